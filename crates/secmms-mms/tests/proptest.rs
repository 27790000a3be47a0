//! Property tests: every codec round-trips (encode → decode → same value, and the encoding is
//! stable), and no input makes a decoder or the server panic.

use proptest::collection::vec;
use proptest::prelude::*;
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{ServerConfig, Vmd};
use secmms_mms::*;

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_$]{0,24}"
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn object_name() -> impl Strategy<Value = ObjectName> {
    prop_oneof![
        ident().prop_map(ObjectName::VmdSpecific),
        (ident(), ident()).prop_map(|(d, i)| ObjectName::domain(d, i)),
        ident().prop_map(ObjectName::AaSpecific),
    ]
}

fn bit_string() -> impl Strategy<Value = BitString> {
    (vec(any::<u8>(), 0..4), 0u8..8).prop_map(|(b, u)| {
        let u = if b.is_empty() { 0 } else { u };
        BitString::from_parts(b, u).unwrap()
    })
}

fn oid() -> impl Strategy<Value = secmms_ber::Oid> {
    (0u64..2, 0u64..40, vec(any::<u32>(), 0..6)).prop_map(|(a, b, rest)| {
        let mut arcs = vec![a, b];
        arcs.extend(rest.into_iter().map(u64::from));
        secmms_ber::Oid::new(&arcs).unwrap()
    })
}

fn simple_data() -> impl Strategy<Value = Data> {
    prop_oneof![
        any::<bool>().prop_map(Data::Boolean),
        bit_string().prop_map(Data::BitString),
        any::<i64>().prop_map(Data::Integer),
        any::<u64>().prop_map(Data::Unsigned),
        any::<u32>().prop_map(|b| Data::float32(f32::from_bits(b))),
        any::<u64>().prop_map(|b| Data::float64(f64::from_bits(b))),
        vec(any::<u8>(), 0..16).prop_map(Data::OctetString),
        text().prop_map(Data::VisibleString),
        "[0-9]{14}(\\.[0-9]{1,3})?Z".prop_map(Data::GeneralizedTime),
        (any::<u32>(), proptest::option::of(any::<u16>()))
            .prop_map(|(millis, days)| Data::BinaryTime(TimeOfDay { millis, days })),
        (0i64..i64::MAX).prop_map(Data::Bcd),
        bit_string().prop_map(Data::BooleanArray),
        oid().prop_map(Data::ObjId),
        ".{0,12}".prop_map(Data::MmsString),
        (any::<u32>(), 0u32..(1 << 24), any::<u8>()).prop_map(|(seconds, fraction, quality)| {
            Data::UtcTime(UtcTime {
                seconds,
                fraction,
                quality,
            })
        }),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    simple_data().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Data::Array),
            vec(inner, 0..6).prop_map(Data::Structure),
        ]
    })
}

fn type_description() -> impl Strategy<Value = TypeDescription> {
    let leaf = prop_oneof![
        object_name().prop_map(TypeDescription::TypeName),
        Just(TypeDescription::Boolean),
        any::<i32>().prop_map(TypeDescription::BitString),
        any::<u8>().prop_map(TypeDescription::Integer),
        any::<u8>().prop_map(TypeDescription::Unsigned),
        (any::<u8>(), any::<u8>()).prop_map(|(f, e)| TypeDescription::FloatingPoint {
            format_width: f,
            exponent_width: e
        }),
        any::<i32>().prop_map(TypeDescription::OctetString),
        any::<i32>().prop_map(TypeDescription::VisibleString),
        Just(TypeDescription::GeneralizedTime),
        any::<bool>().prop_map(TypeDescription::BinaryTime),
        any::<u8>().prop_map(TypeDescription::Bcd),
        Just(TypeDescription::ObjId),
        any::<i32>().prop_map(TypeDescription::MmsString),
        Just(TypeDescription::UtcTime),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            (any::<bool>(), any::<u32>(), inner.clone()).prop_map(|(packed, n, e)| {
                TypeDescription::Array {
                    packed,
                    number_of_elements: n,
                    element_type: Box::new(e),
                }
            }),
            (
                any::<bool>(),
                vec((proptest::option::of(ident()), inner), 0..5)
            )
                .prop_map(|(packed, c)| TypeDescription::Structure {
                    packed,
                    components: c
                        .into_iter()
                        .map(|(name, ty)| StructComponent { name, ty })
                        .collect(),
                }),
        ]
    })
}

fn var_spec() -> impl Strategy<Value = VariableSpec> {
    (
        object_name(),
        proptest::option::of(prop_oneof![
            Just(vec![0x82, 0x01, 0x03]),
            Just(vec![0x81, 0x01, b'a'])
        ]),
    )
        .prop_map(|(name, alternate_access)| VariableSpec {
            name,
            alternate_access,
        })
}

fn vas() -> impl Strategy<Value = VariableAccessSpecification> {
    prop_oneof![
        vec(var_spec(), 0..4).prop_map(VariableAccessSpecification::ListOfVariable),
        object_name().prop_map(VariableAccessSpecification::VariableListName),
    ]
}

fn access_result() -> impl Strategy<Value = AccessResult> {
    prop_oneof![
        data().prop_map(AccessResult::Success),
        (0usize..12).prop_map(|i| AccessResult::Failure(DataAccessError::ALL[i])),
    ]
}

fn request() -> impl Strategy<Value = ConfirmedServiceRequest> {
    use ConfirmedServiceRequest as Q;
    prop_oneof![
        any::<bool>().prop_map(Q::Status),
        (
            any::<u8>(),
            prop_oneof![
                Just(ObjectScope::Vmd),
                ident().prop_map(ObjectScope::Domain),
                Just(ObjectScope::Aa)
            ],
            proptest::option::of(ident())
        )
            .prop_map(
                |(c, scope, continue_after)| Q::GetNameList(GetNameListRequest {
                    object_class: ObjectClass(c),
                    scope,
                    continue_after
                })
            ),
        Just(Q::Identify),
        (any::<bool>(), vas()).prop_map(|(s, spec)| Q::Read(ReadRequest {
            specification_with_result: s,
            spec
        })),
        (vas(), vec(data(), 0..4)).prop_map(|(spec, data)| Q::Write(WriteRequest { spec, data })),
        object_name().prop_map(Q::GetVariableAccessAttributes),
        (object_name(), vec(var_spec(), 0..4)).prop_map(|(name, variables)| {
            Q::DefineNamedVariableList(DefineNamedVariableListRequest { name, variables })
        }),
        object_name().prop_map(Q::GetNamedVariableListAttributes),
        (
            0u8..4,
            proptest::option::of(vec(object_name(), 0..3)),
            proptest::option::of(ident())
        )
            .prop_map(|(scope, names, domain)| Q::DeleteNamedVariableList(
                DeleteNamedVariableListRequest {
                    scope,
                    names,
                    domain
                }
            )),
    ]
}

fn response() -> impl Strategy<Value = ConfirmedServiceResponse> {
    use ConfirmedServiceResponse as R;
    prop_oneof![
        (
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(bit_string())
        )
            .prop_map(
                |(logical, physical, local_detail)| R::Status(StatusResponse {
                    logical,
                    physical,
                    local_detail
                })
            ),
        (vec(ident(), 0..6), any::<bool>()).prop_map(|(identifiers, more_follows)| {
            R::GetNameList(GetNameListResponse {
                identifiers,
                more_follows,
            })
        }),
        (
            text(),
            text(),
            text(),
            proptest::option::of(vec(oid(), 0..3))
        )
            .prop_map(|(vendor, model, revision, abstract_syntaxes)| R::Identify(
                IdentifyResponse {
                    vendor,
                    model,
                    revision,
                    abstract_syntaxes
                }
            )),
        (proptest::option::of(vas()), vec(access_result(), 0..4))
            .prop_map(|(spec, results)| R::Read(ReadResponse { spec, results })),
        vec(
            prop_oneof![
                Just(WriteResult::Success),
                (0usize..12).prop_map(|i| WriteResult::Failure(DataAccessError::ALL[i]))
            ],
            0..4
        )
        .prop_map(R::Write),
        (any::<bool>(), type_description()).prop_map(|(mms_deletable, type_description)| {
            R::GetVariableAccessAttributes(GetVariableAccessAttributesResponse {
                mms_deletable,
                type_description,
            })
        }),
        Just(R::DefineNamedVariableList),
        (any::<bool>(), vec(var_spec(), 0..4)).prop_map(|(mms_deletable, variables)| {
            R::GetNamedVariableListAttributes(GetNamedVariableListAttributesResponse {
                mms_deletable,
                variables,
            })
        }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(matched, deleted)| R::DeleteNamedVariableList { matched, deleted }),
    ]
}

fn service_error() -> impl Strategy<Value = ServiceError> {
    (
        0u32..13,
        any::<i64>(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(t, c, additional_code, additional_description)| ServiceError {
                class: ErrorClass::from_parts(t, c).unwrap(),
                additional_code,
                additional_description,
            },
        )
}

fn initiate() -> impl Strategy<Value = InitiateParameters> {
    (
        proptest::option::of(0u32..=i32::MAX as u32),
        0u16..=i16::MAX as u16,
        0u16..=i16::MAX as u16,
        proptest::option::of(0u8..=127),
        0u16..=i16::MAX as u16,
        bit_string(),
        bit_string(),
    )
        .prop_map(|(l, a, b, n, v, p, s)| InitiateParameters {
            local_detail: l,
            max_serv_outstanding_calling: a,
            max_serv_outstanding_called: b,
            data_structure_nesting_level: n,
            version: v,
            parameter_cbb: p,
            services_supported: s,
        })
}

fn pdu() -> impl Strategy<Value = MmsPdu> {
    prop_oneof![
        (any::<u32>(), request()).prop_map(|(invoke_id, service)| MmsPdu::ConfirmedRequest(
            ConfirmedRequest { invoke_id, service }
        )),
        (any::<u32>(), response()).prop_map(|(invoke_id, service)| MmsPdu::ConfirmedResponse(
            ConfirmedResponse { invoke_id, service }
        )),
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            service_error()
        )
            .prop_map(
                |(invoke_id, modifier_position, error)| MmsPdu::ConfirmedError(ConfirmedError {
                    invoke_id,
                    modifier_position,
                    error
                })
            ),
        (vas(), vec(access_result(), 0..4)).prop_map(|(spec, results)| MmsPdu::InformationReport(
            InformationReport { spec, results }
        )),
        (proptest::option::of(any::<u32>()), 1u32..12, any::<i64>()).prop_map(|(i, t, code)| {
            MmsPdu::Reject(RejectPdu {
                original_invoke_id: i,
                reason: RejectReason {
                    pdu: RejectPduType::from_tag(t).unwrap(),
                    code,
                },
            })
        }),
        any::<u32>().prop_map(MmsPdu::CancelRequest),
        any::<u32>().prop_map(MmsPdu::CancelResponse),
        (any::<u32>(), service_error())
            .prop_map(|(invoke_id, error)| MmsPdu::CancelError { invoke_id, error }),
        initiate().prop_map(MmsPdu::InitiateRequest),
        initiate().prop_map(MmsPdu::InitiateResponse),
        service_error().prop_map(MmsPdu::InitiateError),
        Just(MmsPdu::ConcludeRequest),
        Just(MmsPdu::ConcludeResponse),
        service_error().prop_map(MmsPdu::ConcludeError),
    ]
}

/// Limits large enough for any generated PDU.
fn lim() -> MmsLimits {
    MmsLimits {
        max_pdu_size: 1 << 20,
        ..MmsLimits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn data_round_trip(d in data()) {
        let b = d.to_ber();
        let mut r = secmms_ber::Reader::new(&b, lim().ber());
        let t = r.read().unwrap();
        let back = Data::decode(&t, &lim()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.to_ber(), b);
    }

    #[test]
    fn type_description_round_trip(td in type_description()) {
        let mut w = secmms_ber::Writer::new();
        td.encode(&mut w);
        let b = w.finish();
        let mut r = secmms_ber::Reader::new(&b, lim().ber());
        let back = TypeDescription::decode(&r.read().unwrap(), &lim()).unwrap();
        prop_assert_eq!(back, td);
    }

    #[test]
    fn pdu_round_trip(p in pdu()) {
        let b = p.encode();
        let back = MmsPdu::decode(&b, &lim()).unwrap();
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.encode(), b);
    }

    #[test]
    fn decoder_and_server_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = MmsPdu::decode(&bytes, &MmsLimits::default());
        let server = Vmd::new(SharedModel::new(Model::default_demo()), ServerConfig::default());
        let _ = server.accept_initiate(&bytes);
        let a = server.association(secmms_mms::client::parse_initiate_response(
            &MmsPdu::InitiateResponse(secmms_mms::client::initiate_request(&Default::default())).encode(),
            &Default::default(),
        ).unwrap());
        let _ = a.handle_pdu(&bytes);
    }

    #[test]
    fn mutated_requests_never_panic(p in pdu(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut b = p.encode();
        let i = pos % b.len();
        b[i] = byte;
        let server = Vmd::new(SharedModel::new(Model::default_demo()), ServerConfig::default());
        let neg = secmms_mms::client::parse_initiate_response(
            &MmsPdu::InitiateResponse(secmms_mms::client::initiate_request(&Default::default())).encode(),
            &Default::default(),
        ).unwrap();
        let _ = server.handle_pdu(&b, &neg);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn text_parsers_never_panic(s in ".{0,64}", td in type_description()) {
        let _ = Model::from_scl(&s);
        let _ = Model::from_toml(&s);
        let _ = secmms_mms::client::ObjectReference::parse(&s);
        let _ = secmms_mms::value::parse_value(&td, &s);
    }

    #[test]
    fn mutated_demo_cid_never_panics(pos in any::<usize>(), ch in any::<char>()) {
        let mut cid: Vec<char> = include_str!("data/demo.cid").chars().collect();
        let i = pos % cid.len();
        cid[i] = ch;
        let s: String = cid.into_iter().collect();
        let _ = Model::from_scl(&s);
    }

    #[test]
    fn rendered_values_parse_back(d in simple_data()) {
        // Display output of simple values is accepted by parse_value for the matching type.
        let ty = match &d {
            Data::Boolean(_) => TypeDescription::Boolean,
            Data::Integer(_) => TypeDescription::Integer(64),
            Data::Unsigned(_) => TypeDescription::Unsigned(64),
            Data::OctetString(_) => TypeDescription::OctetString(-64),
            Data::ObjId(_) => TypeDescription::ObjId,
            Data::BitString(b) => TypeDescription::BitString(b.len() as i32),
            _ => return Ok(()),
        };
        let back = secmms_mms::value::parse_value(&ty, &d.to_string()).unwrap();
        match (&d, &back) {
            (Data::BitString(a), Data::BitString(b)) => {
                prop_assert_eq!(a.len(), b.len());
                for i in 0..a.len() { prop_assert_eq!(a.get(i), b.get(i)); }
            }
            _ => prop_assert_eq!(back, d),
        }
    }
}
