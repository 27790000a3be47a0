//! What the typed sections of the configuration share: the error of a value out of range or
//! malformed ([`SettingError`], naming the field) and the range of every numeric value
//! ([`bounds`]). A leaf: each section (`transport::TcpConfig`, `osi::OsiSettings`,
//! `server::ServerConfig`, `client::ClientConfig`, `security::SecurityConfig`,
//! `relay::RelayConfig`) validates itself with these, and the builders return them.

/// A configuration value out of range or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration value {field}: {reason}")]
pub struct SettingError {
    /// The dotted field name (`section.field`, as in the TOML file).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl SettingError {
    /// The error of `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> SettingError {
        SettingError {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks `value` of `field` against the inclusive range `(min, max)`: a value outside is
/// refused here with the field's name, never met later as an overflow (a timeout of `u64::MAX`
/// seconds added to an `Instant`) or an allocation sized by configuration.
pub(crate) fn check_range(
    field: &'static str,
    value: u64,
    (min, max): (u64, u64),
) -> Result<(), SettingError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingError::new(
            field,
            format!("{value} is outside {min}..={max}"),
        ))
    }
}

/// The range of every numeric configuration value (inclusive), checked by each section's
/// `validate`.
pub mod bounds {
    /// Associations served or relayed at once.
    pub const ASSOCIATIONS: (u64, u64) = (1, 100_000);
    /// Timeouts of one step (associate, request, connect, handshake): up to one hour.
    pub const TIMEOUT_SECS: (u64, u64) = (1, 3_600);
    /// Idle timeouts: 0 (never) up to one week.
    pub const IDLE_SECS: (u64, u64) = (0, 604_800);
    /// MMS PDU sizes proposed or accepted (the reassembled TSDU is at most 64 KiB, Annex H).
    pub const PDU_SIZE: (u64, u64) = (64, 65_000);
    /// Outstanding requests negotiated.
    pub const OUTSTANDING: (u64, u64) = (1, 1_024);
    /// Answers per write (0 = the whole burst).
    pub const RESPONSE_GROUP: (u64, u64) = (0, 1_024);
    /// TCP keep-alive idle time and probe interval.
    pub const KEEPALIVE_SECS: (u64, u64) = (1, 86_400);
    /// TCP keep-alive probes.
    pub const KEEPALIVE_COUNT: (u64, u64) = (1, 127);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_names_the_field() {
        assert!(check_range("a.b", 5, (1, 5)).is_ok());
        let e = check_range("a.b", 6, (1, 5)).unwrap_err();
        assert_eq!(e.field, "a.b");
        assert!(e.to_string().contains("6 is outside 1..=5"), "{e}");
    }
}
