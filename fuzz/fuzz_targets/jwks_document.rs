//! A JWKS document (or single JWK, or PEM) as `JwtVerifierBuilder::public_key` takes it: the same
//! `keys` parsing a fetched JWKS goes through (key types, curves, RSA modulus and exponent
//! checks, base64url). Never panics; and whatever keys the document yields, a token signed by a
//! key it cannot contain (fresh development keys of this process) is refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use mcp_auth_jwt::{JwtVerifier, TokenVerifier};

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "https://api.example/mcp";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// One token per development algorithm, signed by keys generated for this process only.
fn foreign_tokens() -> &'static [String] {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        let issuer = DevIssuer::generate_fresh(ISSUER);
        DevAlg::ALL
            .iter()
            .map(|&alg| issuer.mint(TokenSpec::new("user").audience(AUDIENCE).alg(alg)))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(verifier) = JwtVerifier::builder()
        .public_key(text)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithms(DevAlg::ALL.map(DevAlg::algorithm))
        .build()
    else {
        return;
    };
    for token in foreign_tokens() {
        let result = runtime().block_on(verifier.verify(token));
        assert!(
            result.is_err(),
            "a key from the document verified a foreign token"
        );
    }
});
