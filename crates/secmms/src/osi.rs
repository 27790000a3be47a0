//! Maps the runtime configuration onto the sans-IO OSI association configuration.

use secmms_ber::Oid;
use secmms_osi::cotp::TpduSize;
use secmms_osi::limits::{MAX_PSEL_LEN, MAX_SSEL_LEN, MAX_TSEL_LEN};
use secmms_osi::OsiConfig;

use crate::config::{parse_hex, ConfigError, OsiSettings};

fn opt(v: Vec<u8>) -> Option<Vec<u8>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

fn oid(field: &'static str, s: &str) -> Result<Oid, ConfigError> {
    s.parse().map_err(|_| ConfigError::Value {
        field,
        reason: format!("`{s}` is not a dotted OID"),
    })
}

/// Builds the OSI configuration of one association. `responder` selects the server side: the
/// local/remote names keep their meaning (ours / the peer's) in both roles, and every field left
/// out of the configuration keeps that role's default.
pub fn osi_config(s: &OsiSettings, responder: bool) -> Result<OsiConfig, ConfigError> {
    let mut c = if responder {
        OsiConfig::server_default()
    } else {
        OsiConfig::default()
    };
    let sel =
        |field, v: &Option<String>, max, cur: &mut Option<Vec<u8>>| -> Result<(), ConfigError> {
            if let Some(v) = v {
                *cur = opt(parse_hex(field, v, max)?);
            }
            Ok(())
        };
    sel(
        "osi.local_tsel",
        &s.local_tsel,
        MAX_TSEL_LEN,
        &mut c.local_tsel,
    )?;
    sel(
        "osi.remote_tsel",
        &s.remote_tsel,
        MAX_TSEL_LEN,
        &mut c.remote_tsel,
    )?;
    sel(
        "osi.local_ssel",
        &s.local_ssel,
        MAX_SSEL_LEN,
        &mut c.local_ssel,
    )?;
    sel(
        "osi.remote_ssel",
        &s.remote_ssel,
        MAX_SSEL_LEN,
        &mut c.remote_ssel,
    )?;
    sel(
        "osi.local_psel",
        &s.local_psel,
        MAX_PSEL_LEN,
        &mut c.local_psel,
    )?;
    sel(
        "osi.remote_psel",
        &s.remote_psel,
        MAX_PSEL_LEN,
        &mut c.remote_psel,
    )?;
    if let Some(v) = &s.local_ap_title {
        c.local_ap_title = Some(oid("osi.local_ap_title", v)?);
    }
    if let Some(v) = &s.remote_ap_title {
        c.remote_ap_title = Some(oid("osi.remote_ap_title", v)?);
    }
    if let Some(v) = s.local_ae_qualifier {
        c.local_ae_qualifier = Some(v);
    }
    if let Some(v) = s.remote_ae_qualifier {
        c.remote_ae_qualifier = Some(v);
    }
    if let Some(size) = s.tpdu_size {
        let bad = || ConfigError::Value {
            field: "osi.tpdu_size",
            reason: "a power of two from 128 to 2048".into(),
        };
        if !(128..=2048).contains(&size) || !size.is_power_of_two() {
            return Err(bad());
        }
        c.tpdu_size = TpduSize::from_code(size.trailing_zeros() as u8).map_err(|_| bad())?;
    }
    if let Some(m) = s.max_tsdu {
        if !(1024..=16 * 1024 * 1024).contains(&m) {
            return Err(ConfigError::Value {
                field: "osi.max_tsdu",
                reason: "1024 ..= 16 MiB".into(),
            });
        }
        c.limits.max_tsdu = m;
        c.limits.ber.max_len = c.limits.ber.max_len.max(m);
    }
    if let Some(b) = s.check_selectors {
        c.check_selectors = b;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_osi_crate() {
        assert_eq!(
            osi_config(&OsiSettings::default(), false).unwrap(),
            OsiConfig::default()
        );
        assert_eq!(
            osi_config(&OsiSettings::default(), true).unwrap(),
            OsiConfig::server_default()
        );
        let s = OsiSettings {
            local_tsel: Some(String::new()),
            tpdu_size: Some(1024),
            ..Default::default()
        };
        let c = osi_config(&s, false).unwrap();
        assert_eq!(c.local_tsel, None);
        assert_eq!(c.tpdu_size, TpduSize::S1024);
        assert!(osi_config(
            &OsiSettings {
                tpdu_size: Some(4096),
                ..Default::default()
            },
            false
        )
        .is_err());
    }
}
