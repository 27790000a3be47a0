//! The same two MMS PDUs (a confirmed Read request and its Read response) modelled with `rasn`
//! derives, checked against our hand-written codec byte for byte. The model is shared with the
//! `rasn_compare` benchmark (`benches/rasn_compare.rs` includes this file), which measures both
//! codecs on identical bytes (docs/PERFORMANCE.md, "Hand-written BER vs rasn").

/// A minimal but faithful subset of the ISO 9506-2 ASN.1 module (MMSpdu, §7; Read, §14.6;
/// VariableAccessSpecification, §14.5; ObjectName, §7.5; AccessResult and Data, §14.4),
/// written with `rasn` derives. Tags follow the module's IMPLICIT TAGS default: a context tag on
/// a CHOICE type is explicit, every other context tag is implicit.
pub mod rasn_mms {
    use rasn::prelude::*;

    /// `Identifier ::= VisibleString` (ISO 9506-2 §7.5).
    pub type Identifier = VisibleString;

    /// `MMSpdu ::= CHOICE { confirmed-RequestPDU [0] IMPLICIT …, confirmed-ResponsePDU [1]
    /// IMPLICIT …, … }` (ISO 9506-2 §7). Only the two alternatives measured.
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum MmsPdu {
        /// `confirmed-RequestPDU [0] IMPLICIT Confirmed-RequestPDU`.
        #[rasn(tag(context, 0))]
        ConfirmedRequest(ConfirmedRequestPdu),
        /// `confirmed-ResponsePDU [1] IMPLICIT Confirmed-ResponsePDU`.
        #[rasn(tag(context, 1))]
        ConfirmedResponse(ConfirmedResponsePdu),
    }

    /// `Confirmed-RequestPDU ::= SEQUENCE { invokeID Unsigned32, service
    /// ConfirmedServiceRequest }` (ISO 9506-2 §7.1.1; listOfModifier omitted).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    pub struct ConfirmedRequestPdu {
        /// `invokeID Unsigned32`.
        pub invoke_id: u32,
        /// `service ConfirmedServiceRequest` (untagged CHOICE).
        pub service: ConfirmedServiceRequest,
    }

    /// `Confirmed-ResponsePDU ::= SEQUENCE { invokeID Unsigned32, service
    /// ConfirmedServiceResponse }` (ISO 9506-2 §7.1.2).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    pub struct ConfirmedResponsePdu {
        /// `invokeID Unsigned32`.
        pub invoke_id: u32,
        /// `service ConfirmedServiceResponse` (untagged CHOICE).
        pub service: ConfirmedServiceResponse,
    }

    /// `ConfirmedServiceRequest ::= CHOICE { …, read [4] IMPLICIT Read-Request, … }`.
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum ConfirmedServiceRequest {
        /// `read [4] IMPLICIT Read-Request`.
        #[rasn(tag(context, 4))]
        Read(ReadRequest),
    }

    /// `ConfirmedServiceResponse ::= CHOICE { …, read [4] IMPLICIT Read-Response, … }`.
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum ConfirmedServiceResponse {
        /// `read [4] IMPLICIT Read-Response`.
        #[rasn(tag(context, 4))]
        Read(ReadResponse),
    }

    /// `Read-Request ::= SEQUENCE { specificationWithResult [0] IMPLICIT BOOLEAN DEFAULT FALSE,
    /// variableAccessSpecificatn [1] VariableAccessSpecification }` (ISO 9506-2 §14.6.1).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    pub struct ReadRequest {
        /// `specificationWithResult [0] IMPLICIT BOOLEAN DEFAULT FALSE`.
        #[rasn(tag(context, 0), default)]
        pub specification_with_result: bool,
        /// `variableAccessSpecificatn [1] VariableAccessSpecification` (explicit: a CHOICE).
        #[rasn(tag(explicit(context, 1)))]
        pub spec: VariableAccessSpecification,
    }

    /// `Read-Response ::= SEQUENCE { variableAccessSpecificatn [0] VariableAccessSpecification
    /// OPTIONAL, listOfAccessResult [1] IMPLICIT SEQUENCE OF AccessResult }` (§14.6.2).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    pub struct ReadResponse {
        /// `variableAccessSpecificatn [0] VariableAccessSpecification OPTIONAL`.
        #[rasn(tag(explicit(context, 0)))]
        pub spec: Option<VariableAccessSpecification>,
        /// `listOfAccessResult [1] IMPLICIT SEQUENCE OF AccessResult`.
        #[rasn(tag(context, 1))]
        pub results: SequenceOf<AccessResult>,
    }

    /// `VariableAccessSpecification ::= CHOICE { listOfVariable [0] IMPLICIT SEQUENCE OF …,
    /// variableListName [1] ObjectName }` (ISO 9506-2 §14.5).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum VariableAccessSpecification {
        /// `listOfVariable [0] IMPLICIT SEQUENCE OF SEQUENCE { … }`.
        #[rasn(tag(context, 0))]
        ListOfVariable(SequenceOf<VariableSpec>),
        /// `variableListName [1] ObjectName` (explicit: a CHOICE).
        #[rasn(tag(explicit(context, 1)))]
        VariableListName(ObjectName),
    }

    /// One listOfVariable element: `SEQUENCE { variableSpecification VariableSpecification,
    /// alternateAccess [5] IMPLICIT AlternateAccess OPTIONAL }` (alternateAccess omitted).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    pub struct VariableSpec {
        /// `variableSpecification VariableSpecification` (untagged CHOICE).
        pub variable_specification: VariableSpecification,
    }

    /// `VariableSpecification ::= CHOICE { name [0] ObjectName, … }` (ISO 9506-2 §14.5.1).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum VariableSpecification {
        /// `name [0] ObjectName` (explicit: a CHOICE).
        #[rasn(tag(explicit(context, 0)))]
        Name(ObjectName),
    }

    /// `ObjectName ::= CHOICE { vmd-specific [0] IMPLICIT Identifier, domain-specific [1]
    /// IMPLICIT SEQUENCE { domainId Identifier, itemId Identifier }, aa-specific [2] IMPLICIT
    /// Identifier }` (ISO 9506-2 §7.5).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    #[allow(clippy::enum_variant_names)] // the standard's alternative names
    pub enum ObjectName {
        /// `vmd-specific [0] IMPLICIT Identifier`.
        #[rasn(tag(context, 0))]
        VmdSpecific(Identifier),
        /// `domain-specific [1] IMPLICIT SEQUENCE { … }`.
        #[rasn(tag(context, 1))]
        DomainSpecific(DomainSpecific),
        /// `aa-specific [2] IMPLICIT Identifier`.
        #[rasn(tag(context, 2))]
        AaSpecific(Identifier),
    }

    /// The domain-specific SEQUENCE of ObjectName.
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    pub struct DomainSpecific {
        /// `domainId Identifier`.
        pub domain_id: Identifier,
        /// `itemId Identifier`.
        pub item_id: Identifier,
    }

    /// `AccessResult ::= CHOICE { failure [0] IMPLICIT DataAccessError, success Data }`
    /// (ISO 9506-2 §14.4; DataAccessError is an INTEGER).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum AccessResult {
        /// `failure [0] IMPLICIT DataAccessError`.
        #[rasn(tag(context, 0))]
        Failure(Integer),
        /// `success Data` (untagged CHOICE).
        Success(Data),
    }

    /// `Data ::= CHOICE { …, boolean [3] IMPLICIT BOOLEAN, …, floating-point [7] IMPLICIT
    /// FloatingPoint, … }` (ISO 9506-2 §14.4.2); `FloatingPoint ::= OCTET STRING` (an
    /// exponent-width octet then the IEEE 754 value).
    #[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq)]
    #[rasn(choice)]
    pub enum Data {
        /// `boolean [3] IMPLICIT BOOLEAN`.
        #[rasn(tag(context, 3))]
        Boolean(bool),
        /// `floating-point [7] IMPLICIT FloatingPoint`.
        #[rasn(tag(context, 7))]
        FloatingPoint(OctetString),
    }

    /// The Read request: invokeID 1, DEMOLD0 / GGIO1$MX$AnIn1$mag$f.
    pub fn read_request() -> MmsPdu {
        MmsPdu::ConfirmedRequest(ConfirmedRequestPdu {
            invoke_id: 1,
            service: ConfirmedServiceRequest::Read(ReadRequest {
                specification_with_result: false,
                spec: VariableAccessSpecification::ListOfVariable(vec![VariableSpec {
                    variable_specification: VariableSpecification::Name(
                        ObjectName::DomainSpecific(DomainSpecific {
                            domain_id: Identifier::try_from("DEMOLD0").expect("visible"),
                            item_id: Identifier::try_from("GGIO1$MX$AnIn1$mag$f").expect("visible"),
                        }),
                    ),
                }]),
            }),
        })
    }

    /// The Read response: invokeID 1, one FLOAT32 success, 42.5.
    pub fn read_response() -> MmsPdu {
        let mut fp = vec![8u8];
        fp.extend_from_slice(&42.5f32.to_be_bytes());
        MmsPdu::ConfirmedResponse(ConfirmedResponsePdu {
            invoke_id: 1,
            service: ConfirmedServiceResponse::Read(ReadResponse {
                spec: None,
                results: vec![AccessResult::Success(Data::FloatingPoint(
                    OctetString::from(fp),
                ))],
            }),
        })
    }
}

/// The same two PDUs in our own types.
pub mod ours {
    use secmms_mms::*;

    /// The Read request: invokeID 1, DEMOLD0 / GGIO1$MX$AnIn1$mag$f.
    pub fn read_request() -> MmsPdu {
        MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: 1,
            service: ConfirmedServiceRequest::Read(ReadRequest {
                specification_with_result: false,
                spec: VariableAccessSpecification::single(ObjectName::domain(
                    "DEMOLD0",
                    "GGIO1$MX$AnIn1$mag$f",
                )),
            }),
        })
    }

    /// The Read response: invokeID 1, one FLOAT32 success, 42.5.
    pub fn read_response() -> MmsPdu {
        MmsPdu::ConfirmedResponse(ConfirmedResponse {
            invoke_id: 1,
            service: ConfirmedServiceResponse::Read(ReadResponse {
                spec: None,
                results: vec![AccessResult::Success(Data::float32(42.5))],
            }),
        })
    }
}

/// Asserts, for both PDUs, that rasn decodes our bytes to the expected value, that our decoder
/// gives back our value, and that rasn's encoding equals ours byte for byte. Returns our
/// encodings (request, response). Used by the test below and by the benchmark's setup.
pub fn check_equivalence() -> (Vec<u8>, Vec<u8>) {
    let lim = secmms_mms::MmsLimits::default();
    let pairs = [
        (ours::read_request(), rasn_mms::read_request()),
        (ours::read_response(), rasn_mms::read_response()),
    ];
    let mut out = Vec::new();
    for (our, theirs) in pairs {
        let bytes = our.encode();
        let decoded: rasn_mms::MmsPdu = rasn::ber::decode(&bytes).expect("rasn decodes our bytes");
        assert_eq!(
            decoded, theirs,
            "rasn decodes our bytes to the expected value"
        );
        assert_eq!(
            secmms_mms::MmsPdu::decode(&bytes, &lim).expect("we decode our bytes"),
            our
        );
        let rasn_bytes = rasn::ber::encode(&theirs).expect("rasn encodes");
        assert_eq!(
            hex::encode(&rasn_bytes),
            hex::encode(&bytes),
            "rasn's encoding equals ours byte for byte"
        );
        out.push(bytes);
    }
    let resp = out.pop().unwrap_or_default();
    let req = out.pop().unwrap_or_default();
    (req, resp)
}

#[test]
fn rasn_and_ours_agree_byte_for_byte() {
    let (req, resp) = check_equivalence();
    // Hand-checked against ISO 9506-2 §7 / §14 (see the spec reference §7).
    assert_eq!(
        hex::encode(&req),
        "a02e020101a429a127a0253023a021a11f1a0744454d4f4c44301a14".to_string()
            + &hex::encode(b"GGIO1$MX$AnIn1$mag$f")
    );
    assert_eq!(hex::encode(&resp), "a10e020101a409a107870508422a0000");
}
