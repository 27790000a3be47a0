//! Negotiation of the protection mode (§13.3.1.5): what the client offers, what the server
//! selects from the offer, and the client's check of that selection.

use super::*;

pub(super) fn server_select(
    cfg: &crate::config::E2eConfig,
    t: &ClearToken1,
) -> Result<ProtectionMode, Fail> {
    use HandshakeDiagnostic as H;
    match &t.encr_mode {
        EncrMode::Aea(list) => {
            if cfg.encryption == EncryptionPolicy::Forbidden {
                return Err(hfail(
                    req::AEAD_NO_ENCR,
                    H::AeaSelectButEncrypNotSupp,
                    "AE requested, encryption not supported",
                ));
            }
            if cfg.allowed_ae.is_empty() {
                return Err(hfail(
                    req::AEAD_NOT_SUP,
                    H::EncrModeAeaNotSupported,
                    "AE mode not supported",
                ));
            }
            list.iter()
                .filter_map(AeAlg::from_id)
                .find(|a| cfg.allowed_ae.contains(a))
                .map(ProtectionMode::Ae)
                .ok_or_else(|| {
                    hfail(
                        req::AE_ALG_NOT_SUP,
                        H::AeaAlgorithmsNotSupported,
                        "no AE algorithm supported",
                    )
                })
        }
        EncrMode::NonAea { encr, icv } => {
            if cfg.require_ae {
                return Err(hfail(
                    req::AE_REQUIRED,
                    H::AeIsRequired,
                    "policy requires AE",
                ));
            }
            let e = match encr {
                None => {
                    if cfg.encryption == EncryptionPolicy::Required {
                        return Err(hfail(
                            req::ENCR_NOT_REQ,
                            H::EncryptionRequired,
                            "policy requires encryption",
                        ));
                    }
                    None
                }
                Some(list) => {
                    if cfg.encryption == EncryptionPolicy::Forbidden {
                        return Err(hfail(
                            req::ENCR_NOT_REQUIRED,
                            H::EncryptionNotRequired,
                            "encryption not allowed by policy",
                        ));
                    }
                    Some(
                        list.iter()
                            .filter_map(EncrAlg::from_id)
                            .find(|a| cfg.allowed_encr.contains(a))
                            .ok_or_else(|| {
                                hfail(
                                    req::ENCR_ALG_NOT_SUP,
                                    H::EncryptAlgorithmsNotSupported,
                                    "no encryption algorithm supported",
                                )
                            })?,
                    )
                }
            };
            let i = icv
                .iter()
                .filter_map(IcvAlg::from_id)
                .find(|a| cfg.allowed_icv.contains(a))
                .ok_or_else(|| {
                    hfail(
                        req::ICV_ALG_NOT_SUP,
                        H::IcvAlgorithmsNotSupported,
                        "no ICV algorithm supported",
                    )
                })?;
            Ok(ProtectionMode::NonAe { encr: e, icv: i })
        }
    }
}

pub(super) fn client_check_selection(
    cfg: &crate::config::E2eConfig,
    sel: &EncrMode,
) -> Result<ProtectionMode, Fail> {
    use HandshakeDiagnostic as H;
    let selects_encryption = match sel {
        EncrMode::Aea(_) => true,
        EncrMode::NonAea { encr, .. } => encr.is_some(),
    };
    if selects_encryption && cfg.encryption == EncryptionPolicy::Forbidden {
        return Err(hfail(
            acc::ENCR_NOT_REQUIRED,
            H::EncryptionNotRequired,
            "server selected encryption against policy",
        ));
    }
    match (&cfg.offer, sel) {
        (ModeOffer::Ae(offered), EncrMode::Aea(list)) => {
            if list.len() != 1 {
                return Err(hfail(
                    acc::SINGLE_AE_ALG,
                    H::SingleAeAlgorithmRequired,
                    "not exactly one AE algorithm",
                ));
            }
            match AeAlg::from_id(&list[0]) {
                Some(a) if offered.contains(&a) => Ok(ProtectionMode::Ae(a)),
                _ => Err(hfail(
                    acc::INV_AE_ALG,
                    H::InvalidAeAlgorithm,
                    "AE algorithm not offered",
                )),
            }
        }
        (ModeOffer::Ae(_), EncrMode::NonAea { .. }) => Err(hfail(
            acc::AE_NOT_USED,
            H::AeNotUsed,
            "server answered non-AE",
        )),
        (ModeOffer::NonAe { .. }, EncrMode::Aea(_)) => Err(hfail(
            acc::INV_AE_ALG,
            H::InvalidAeAlgorithm,
            "AE not offered",
        )),
        (ModeOffer::NonAe { encr: oe, icv: oi }, EncrMode::NonAea { encr, icv }) => {
            let e = match encr {
                Some(list) => {
                    if list.len() != 1 {
                        return Err(hfail(
                            acc::SINGLE_ENCR_ALG,
                            H::SingleEncryptAlgoRequired,
                            "not exactly one encryption algorithm",
                        ));
                    }
                    match EncrAlg::from_id(&list[0]) {
                        Some(a) if oe.contains(&a) => Some(a),
                        _ => {
                            return Err(hfail(
                                acc::INV_ENCR_ALG,
                                H::InvalidEncryptionAlgorithm,
                                "encryption algorithm not offered",
                            ))
                        }
                    }
                }
                None => {
                    if cfg.encryption == EncryptionPolicy::Required {
                        return Err(hfail(
                            acc::ENCR_REQUIRED,
                            H::EncryptionRequired,
                            "server selected no encryption",
                        ));
                    }
                    None
                }
            };
            if icv.len() != 1 {
                return Err(hfail(
                    acc::SINGLE_ICV_ALG,
                    H::SingleIcvAlgoRequired,
                    "not exactly one ICV algorithm",
                ));
            }
            match IcvAlg::from_id(&icv[0]) {
                Some(a) if oi.contains(&a) => Ok(ProtectionMode::NonAe { encr: e, icv: a }),
                _ => Err(hfail(
                    acc::INV_ICV_ALG,
                    H::IcvAlgorithmsNotSupported,
                    "ICV algorithm not offered",
                )),
            }
        }
    }
}

pub(super) fn offer_mode(offer: &ModeOffer) -> EncrMode {
    match offer {
        ModeOffer::Ae(l) => EncrMode::Aea(l.iter().map(|a| a.id()).collect()),
        ModeOffer::NonAe { encr, icv } => EncrMode::NonAea {
            encr: if encr.is_empty() {
                None
            } else {
                Some(encr.iter().map(|a| a.id()).collect())
            },
            icv: icv.iter().map(|a| a.id()).collect(),
        },
    }
}

pub(super) fn selection_mode(m: ProtectionMode) -> EncrMode {
    match m {
        ProtectionMode::Ae(a) => EncrMode::Aea(vec![a.id()]),
        ProtectionMode::NonAe { encr, icv } => EncrMode::NonAea {
            encr: encr.map(|e| vec![e.id()]),
            icv: vec![icv.id()],
        },
    }
}
