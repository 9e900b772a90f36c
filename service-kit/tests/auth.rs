//! Bearer-token verification: every kind of token a caller can present, and the caller (or the
//! reason for refusing) it yields — with the development secret and with an identity provider's
//! public keys (Ed25519 and P-256 test keys in `tests/keys/`, made with openssl for these tests
//! only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use service_kit::auth::{Authenticator, Caller, DevelopmentToken, Reason};
use uuid::Uuid;

const SECRET: &str = "a development secret of at least thirty-two bytes";
const OTHER_SECRET: &str = "somebody else's secret, also thirty-two bytes long";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn hs256(claims: serde_json::Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn check(authenticator: &Authenticator, token: &str, expected: Result<Caller, Reason>) {
    let got = authenticator
        .verify(token)
        .map_err(|rejection| rejection.reason);
    assert_eq!(got, expected, "token {token:.40}…");
}

#[test]
fn every_kind_of_hs256_token_yields_its_caller_or_its_reason() {
    let authenticator = Authenticator::hs256(SECRET.as_bytes()).unwrap();
    let customer = Uuid::now_v7();
    let operator = || Caller::Operator {
        subject: "alice".into(),
    };
    let cases: Vec<(&str, String, Result<Caller, Reason>)> = vec![
        (
            "customer",
            DevelopmentToken::customer(customer)
                .mint(SECRET.as_bytes())
                .unwrap(),
            Ok(Caller::Customer(customer)),
        ),
        (
            "operator",
            DevelopmentToken::operator("alice")
                .mint(SECRET.as_bytes())
                .unwrap(),
            Ok(operator()),
        ),
        (
            "operator among other scopes",
            hs256(
                json!({"sub": "alice", "scope": "read operator write", "exp": now() + 60}),
                SECRET,
            ),
            Ok(operator()),
        ),
        (
            "a scope that only contains the word is not operator",
            hs256(
                json!({"sub": customer.to_string(), "scope": "operators", "exp": now() + 60}),
                SECRET,
            ),
            Ok(Caller::Customer(customer)),
        ),
        (
            "customer whose sub is not a UUID",
            hs256(json!({"sub": "bob", "exp": now() + 60}), SECRET),
            Err(Reason::BadSubject),
        ),
        (
            "expired past the leeway",
            DevelopmentToken::customer(customer)
                .expired_since(Duration::from_secs(120))
                .mint(SECRET.as_bytes())
                .unwrap(),
            Err(Reason::Expired),
        ),
        (
            "not valid before a future time",
            hs256(
                json!({"sub": customer.to_string(), "exp": now() + 3600, "nbf": now() + 600}),
                SECRET,
            ),
            Err(Reason::NotYetValid),
        ),
        (
            "signed with another secret",
            DevelopmentToken::operator("mallory")
                .mint(OTHER_SECRET.as_bytes())
                .unwrap(),
            Err(Reason::BadSignature),
        ),
        (
            "no exp",
            hs256(json!({"sub": customer.to_string()}), SECRET),
            Err(Reason::Malformed),
        ),
        (
            "no sub",
            hs256(json!({"scope": "operator", "exp": now() + 60}), SECRET),
            Err(Reason::Malformed),
        ),
        ("not a JWT", "not-a-token".into(), Err(Reason::Malformed)),
        (
            "unsigned (alg none)",
            format!(
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                base64_url(&json!({"sub": "alice", "scope": "operator", "exp": now() + 60}))
            ),
            Err(Reason::Malformed),
        ),
    ];
    for (name, token, expected) in cases {
        let got = authenticator
            .verify(&token)
            .map_err(|rejection| rejection.reason);
        assert_eq!(got, expected, "{name}");
    }
}

fn base64_url(value: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn issuer_and_audience_are_required_once_configured() {
    let authenticator = Authenticator::hs256(SECRET.as_bytes())
        .unwrap()
        .with_issuer("https://id.example")
        .with_audience("saga-rs");
    let customer = Uuid::now_v7();
    let token = |issuer: Option<&str>, audience: Option<&str>| {
        let mut token = DevelopmentToken::customer(customer);
        if let Some(issuer) = issuer {
            token = token.issued_by(issuer);
        }
        if let Some(audience) = audience {
            token = token.for_audience(audience);
        }
        token.mint(SECRET.as_bytes()).unwrap()
    };
    // (iss, aud, what the token yields)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<Caller, Reason>);
    let cases: &[Case<'_>] = &[
        (
            Some("https://id.example"),
            Some("saga-rs"),
            Ok(Caller::Customer(customer)),
        ),
        (
            Some("https://evil.example"),
            Some("saga-rs"),
            Err(Reason::WrongIssuer),
        ),
        (None, Some("saga-rs"), Err(Reason::Malformed)),
        (
            Some("https://id.example"),
            Some("another-app"),
            Err(Reason::WrongAudience),
        ),
        (Some("https://id.example"), None, Err(Reason::Malformed)),
    ];
    for (issuer, audience, expected) in cases {
        check(&authenticator, &token(*issuer, *audience), expected.clone());
    }
}

#[test]
fn public_keys_of_an_identity_provider_verify_its_tokens_only() {
    let customer = Uuid::now_v7();
    let claims = json!({"sub": customer.to_string(), "exp": now() + 60});
    let keys = [(Algorithm::EdDSA, "ed25519"), (Algorithm::ES256, "es256")];
    for (algorithm, name) in keys {
        let public = std::fs::read(format!("tests/keys/{name}-public.pem")).unwrap();
        let private = std::fs::read(format!("tests/keys/{name}-private.pem")).unwrap();
        let authenticator = Authenticator::public_key(&public, algorithm).unwrap();
        let signing = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&private).unwrap(),
            _ => EncodingKey::from_ec_pem(&private).unwrap(),
        };
        let token = jsonwebtoken::encode(&Header::new(algorithm), &claims, &signing).unwrap();
        check(&authenticator, &token, Ok(Caller::Customer(customer)));
        // A shared-secret token must not pass as the provider's (algorithm confusion).
        check(
            &authenticator,
            &hs256(claims.clone(), SECRET),
            Err(Reason::BadSignature),
        );
    }
    assert!(Authenticator::public_key(b"not a key", Algorithm::RS256).is_err());
    assert!(Authenticator::public_key(b"irrelevant", Algorithm::HS256).is_err());
    assert!(Authenticator::hs256(b"too short").is_err());
}

#[test]
fn the_authorization_header_must_be_a_bearer_token() {
    let authenticator = Authenticator::hs256(SECRET.as_bytes()).unwrap();
    let customer = Uuid::now_v7();
    let token = DevelopmentToken::customer(customer)
        .mint(SECRET.as_bytes())
        .unwrap();
    let cases: Vec<(Option<String>, Result<Caller, Reason>)> = vec![
        (None, Err(Reason::Missing)),
        (
            Some(format!("Bearer {token}")),
            Ok(Caller::Customer(customer)),
        ),
        (
            Some(format!("bearer {token}")),
            Ok(Caller::Customer(customer)),
        ),
        (Some(format!("Basic {token}")), Err(Reason::NotBearer)),
        (Some("Bearer ".into()), Err(Reason::NotBearer)),
        (Some(token.clone()), Err(Reason::NotBearer)),
    ];
    for (value, expected) in cases {
        let mut headers = HeaderMap::new();
        if let Some(value) = &value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        let got = authenticator
            .authenticate(&headers)
            .map_err(|rejection| rejection.reason);
        assert_eq!(got, expected, "{value:?}");
    }
}
