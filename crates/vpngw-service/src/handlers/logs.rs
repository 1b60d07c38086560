//! The log actions: the daemons' own lines, read back through the data plane's view.
//!
//! DescribeVpnSslServerLogs (OpenVPN's log; in `ssl_vpn.rs`), DescribeVpnConnectionLogs and
//! ListIpsecServerLogs (charon's log, the lines naming the connection's or the server's
//! definitions) share the time window (From, To, MinutePeriod) and the paging rules here.

use serde_json::json;
use vpngw_api::{ApiError, Code, Params};
use vpngw_store::Kind;

use super::vpn_connection::VpnConnection;
use super::{doc, load, obj};
use crate::validate;
use crate::{HandlerResult, Req};

/// A log request's window (Unix seconds, inclusive) and page.
pub(crate) struct LogQuery {
    from: i64,
    to: i64,
    offset: u64,
    limit: u64,
    pub number: u64,
    pub size: u64,
}

impl LogQuery {
    /// From needs To or MinutePeriod, To needs From or MinutePeriod, and with neither
    /// MinutePeriod is required (counted back from now); `max_minutes` bounds MinutePeriod where
    /// the action documents a range (1 to 10 for the IPsec logs).
    pub(crate) fn parse(p: &Params, now_s: i64, max_minutes: Option<i64>) -> Result<LogQuery, ApiError> {
        let from: Option<i64> = p.opt_num("From")?;
        let to: Option<i64> = p.opt_num("To")?;
        let period: Option<i64> = p.opt_num("MinutePeriod")?;
        if period.is_some_and(|m| m <= 0 || max_minutes.is_some_and(|max| m > max)) {
            return Err(ApiError::invalid("MinutePeriod"));
        }
        let secs = period.map(|m| m.saturating_mul(60));
        let (a, b) = match (from, to, secs) {
            (Some(f), Some(t), _) => (f, t),
            (Some(f), None, Some(s)) => (f, f.saturating_add(s)),
            (None, Some(t), Some(s)) => (t.saturating_sub(s), t),
            (None, None, Some(s)) => (now_s - s, now_s),
            (Some(_), None, None) => return Err(ApiError::missing("To")),
            (None, Some(_), None) => return Err(ApiError::missing("From")),
            (None, None, None) => return Err(ApiError::missing("MinutePeriod")),
        };
        if a < 0 || b < a {
            return Err(ApiError::invalid(if from.is_some() && to.is_some() { "To" } else { "From" }));
        }
        let (offset, limit, number, size) = validate::paging(p)?;
        Ok(LogQuery { from: a, to: b, offset, limit, number, size })
    }

    /// How many of `lines` fall in the window, and the page of them asked for.
    pub(crate) fn page(&self, lines: Vec<String>) -> (usize, Vec<String>) {
        let inside: Vec<String> = lines.into_iter().filter(|l| log_line_time(l).is_some_and(|t| (self.from..=self.to).contains(&t))).collect();
        let total = inside.len();
        (total, inside.into_iter().skip(self.offset as usize).take(self.limit as usize).collect())
    }
}

pub use vpngw_model::plane::log_line_time;

/// The charon lines of one connection, or of one of its tunnels (TunnelId, dual-tunnel only).
pub async fn describe_vpn_connection_logs(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let rec = load(req, Kind::VpnConnection, p.req("VpnConnectionId")?, Code::InvalidVpnConnectionId).await?;
    let c: VpnConnection = doc(&rec)?;
    let keys = match p.opt("TunnelId") {
        Some(t) if c.tunnels.iter().any(|x| x.tunnel_id == t) => vec![t.to_string()],
        Some(_) => return Err(ApiError::new(Code::IllegalTunnelId)),
        None if c.dual() => c.tunnels.iter().map(|t| t.tunnel_id.to_string()).collect(),
        None => vec![rec.id.clone()],
    };
    let q = LogQuery::parse(&p, crate::now_ms() / 1000, Some(10))?;
    let lines = req.svc.live_ipsec_log(super::plane_gateway(&rec).as_deref(), &keys).await?;
    let (_, page) = q.page(lines);
    Ok(obj(json!({"Count": page.len(), "PageNumber": q.number, "PageSize": q.size, "IsCompleted": true, "Data": {"Logs": page}})))
}

/// The charon lines of an IPsec server (its clients' negotiations).
pub async fn list_ipsec_server_logs(req: &mut Req<'_>) -> HandlerResult {
    let p = req.params.clone();
    let rec = load(req, Kind::IpsecServer, p.req("IpsecServerId")?, Code::InvalidIpsecServerId).await?;
    let q = LogQuery::parse(&p, crate::now_ms() / 1000, Some(10))?;
    let lines = req.svc.live_ipsec_log(rec.parent.as_deref(), std::slice::from_ref(&rec.id)).await?;
    let (_, page) = q.page(lines);
    Ok(obj(json!({"Count": page.len(), "PageNumber": q.number, "PageSize": q.size, "IsCompleted": true, "Data": page})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn window(pairs: &[(&str, &str)], now: i64, max: Option<i64>) -> Result<(i64, i64), Code> {
        LogQuery::parse(&params(pairs), now, max).map(|q| (q.from, q.to)).map_err(|e| e.code)
    }

    #[test]
    fn log_windows_follow_the_documented_rules() {
        let now = 1_700_000_000;
        assert_eq!(window(&[("From", "100"), ("To", "200")], now, None), Ok((100, 200)));
        assert_eq!(window(&[("From", "100"), ("MinutePeriod", "2")], now, None), Ok((100, 220)));
        assert_eq!(window(&[("To", "200"), ("MinutePeriod", "1")], now, None), Ok((140, 200)));
        assert_eq!(window(&[("MinutePeriod", "10")], now, None), Ok((now - 600, now)));
        assert_eq!(window(&[("From", "100")], now, None), Err(Code::MissingParameter));
        assert_eq!(window(&[("To", "100")], now, None), Err(Code::MissingParameter));
        assert_eq!(window(&[], now, None), Err(Code::MissingParameter));
        assert_eq!(window(&[("From", "300"), ("To", "200")], now, None), Err(Code::InvalidParameter));
        assert_eq!(window(&[("MinutePeriod", "0")], now, None), Err(Code::InvalidParameter));
        assert_eq!(window(&[("MinutePeriod", "60")], now, None), Ok((now - 3600, now)), "SSL-VPN logs document no upper bound");
        assert_eq!(window(&[("MinutePeriod", "11")], now, Some(10)), Err(Code::InvalidParameter), "the IPsec logs take 1 to 10 minutes");
        assert_eq!(window(&[("MinutePeriod", "10"), ("PageSize", "51")], now, Some(10)), Err(Code::InvalidParameter));
    }

    #[test]
    fn a_page_holds_the_lines_inside_the_window() {
        let q = LogQuery::parse(&params(&[("From", "1795357689"), ("To", "1795357690"), ("PageSize", "1"), ("PageNumber", "2")]), 0, Some(10)).unwrap();
        let lines =
            ["2026-11-22 14:28:08.100 11[IKE] <vco-1-ab|1> before", "2026-11-22 14:28:09.504 11[IKE] <vco-1-ab|1> first", "2026-11-22T14:28:10 second", "no time at all", "2026-11-22 14:28:11 after"];
        let (total, page) = q.page(lines.iter().map(|s| s.to_string()).collect());
        assert_eq!((total, page), (2, vec!["2026-11-22T14:28:10 second".to_string()]));
    }

    #[test]
    fn log_lines_carry_utc_times() {
        assert_eq!(log_line_time("2026-11-22 14:28:09 vsc-test1/10.99.0.2:34309 VERIFY OK"), Some(1_795_357_689));
        assert_eq!(log_line_time("2026-11-22 14:28:09.504 11[IKE] <vco-1-ab|1> IKE_SA established"), Some(1_795_357_689));
        assert_eq!(log_line_time("garbage"), None);
    }
}
