//! OSI addressing and sizes ([`OsiSettings`], the `[osi]` section) and their mapping onto the
//! sans-IO OSI association configuration ([`osi_config`]).

use secmms_ber::Oid;
use secmms_osi::cotp::TpduSize;
use secmms_osi::limits::{MAX_PSEL_LEN, MAX_SSEL_LEN, MAX_TSEL_LEN};
use secmms_osi::OsiConfig;
use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// OSI addressing (selectors, AP-titles) and sizes. Selectors are hex strings. A field left out
/// takes the role's default from `secmms_osi::OsiConfig` (client: TSEL/SSEL `0001`, PSEL
/// `00000001`, AP-title 1.1.1.999 / AE-qualifier 12 calling 1.1.1.999.1 / 12; the server the
/// other way round), which is what IEC 61850 stacks send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsiSettings {
    /// Local transport selector (hex, 0–4 octets per Annex H DECISION; "" for none).
    pub local_tsel: Option<String>,
    /// Remote transport selector (hex).
    pub remote_tsel: Option<String>,
    /// Local session selector (hex).
    pub local_ssel: Option<String>,
    /// Remote session selector (hex).
    pub remote_ssel: Option<String>,
    /// Local presentation selector (hex).
    pub local_psel: Option<String>,
    /// Remote presentation selector (hex).
    pub remote_psel: Option<String>,
    /// Our AP-title (form 2, dotted OID).
    pub local_ap_title: Option<String>,
    /// Our AE-qualifier.
    pub local_ae_qualifier: Option<i64>,
    /// The peer's AP-title (the client calls it).
    pub remote_ap_title: Option<String>,
    /// The peer's AE-qualifier.
    pub remote_ae_qualifier: Option<i64>,
    /// Proposed TPDU size in octets (128–2048 in class 0; default 2048 per Annex H DECISION).
    pub tpdu_size: Option<usize>,
    /// Largest reassembled TSDU accepted (default 64 KiB per Annex H DECISION).
    pub max_tsdu: Option<usize>,
    /// Accept only calls whose called selectors match ours (Annex H DECISION; default true).
    pub check_selectors: Option<bool>,
}

impl OsiSettings {
    /// Checks selectors, titles and sizes (as [`osi_config`] reads them).
    pub fn validate(&self) -> Result<(), SettingError> {
        osi_config(self, false).map(|_| ())
    }
}

/// Decodes a hex selector of at most `max` octets.
fn selector(field: &'static str, s: &str, max: usize) -> Result<Vec<u8>, SettingError> {
    let s = s.trim();
    let bytes = secmms_ber::hex::decode(s)
        .ok_or_else(|| SettingError::new(field, format!("`{s}` is not hex")))?;
    if bytes.len() > max {
        return Err(SettingError::new(field, format!("at most {max} octets")));
    }
    Ok(bytes)
}

fn opt(v: Vec<u8>) -> Option<Vec<u8>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

fn oid(field: &'static str, s: &str) -> Result<Oid, SettingError> {
    s.parse()
        .map_err(|_| SettingError::new(field, format!("`{s}` is not a dotted OID")))
}

/// Builds the OSI configuration of one association. `responder` selects the server side: the
/// local/remote names keep their meaning (ours / the peer's) in both roles, and every field left
/// out of the configuration keeps that role's default.
pub fn osi_config(s: &OsiSettings, responder: bool) -> Result<OsiConfig, SettingError> {
    let mut c = if responder {
        OsiConfig::server_default()
    } else {
        OsiConfig::default()
    };
    let sel =
        |field, v: &Option<String>, max, cur: &mut Option<Vec<u8>>| -> Result<(), SettingError> {
            if let Some(v) = v {
                *cur = opt(selector(field, v, max)?);
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
        let bad = || SettingError::new("osi.tpdu_size", "a power of two from 128 to 2048");
        if !(128..=2048).contains(&size) || !size.is_power_of_two() {
            return Err(bad());
        }
        c.tpdu_size = TpduSize::from_code(size.trailing_zeros() as u8).map_err(|_| bad())?;
    }
    if let Some(m) = s.max_tsdu {
        if !(1024..=16 * 1024 * 1024).contains(&m) {
            return Err(SettingError::new("osi.max_tsdu", "1024 ..= 16 MiB"));
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
