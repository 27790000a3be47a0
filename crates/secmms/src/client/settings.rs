//! The client's timeouts and what its initiate proposes ([`ClientConfig`], the `[client]`
//! section).

use serde::{Deserialize, Serialize};

use crate::settings::{bounds::*, check_range, SettingError};

/// Client settings: timeouts and what the initiate proposes (`[client]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Seconds to wait for the association to be accepted.
    pub associate_timeout_secs: u64,
    /// Seconds to wait for each confirmed response.
    pub request_timeout_secs: u64,
    /// Outstanding requests proposed in the initiate request.
    pub max_outstanding: u16,
    /// Largest MMS PDU proposed in the initiate request.
    pub max_pdu_size: u32,
    /// Over XMPP: the full JID of the server to associate with (`--peer`).
    pub xmpp_peer: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            associate_timeout_secs: 10,
            request_timeout_secs: 10,
            max_outstanding: 16,
            max_pdu_size: 65_000,
            xmpp_peer: None,
        }
    }
}

impl ClientConfig {
    /// Checks every value against its range ([`crate::settings::bounds`]).
    pub fn validate(&self) -> Result<(), SettingError> {
        check_range(
            "client.associate_timeout_secs",
            self.associate_timeout_secs,
            TIMEOUT_SECS,
        )?;
        check_range(
            "client.request_timeout_secs",
            self.request_timeout_secs,
            TIMEOUT_SECS,
        )?;
        check_range(
            "client.max_outstanding",
            u64::from(self.max_outstanding),
            OUTSTANDING,
        )?;
        check_range(
            "client.max_pdu_size",
            u64::from(self.max_pdu_size),
            PDU_SIZE,
        )
    }
}
