//! `WWW-Authenticate` challenges: which of the schemes a registry offers ukpm answers.
//!
//! A 401 may carry several challenges, in one header (`Bearer realm="…",service="…", Basic
//! realm="…"`) or in several. The RFC 7235 grammar is ambiguous enough (commas separate both
//! challenges and parameters, and may sit inside quoted values) that it is parsed by the
//! `http-auth` crate rather than by hand. Bearer is preferred over Basic: it sends the password
//! to the token endpoint only, and the registry gets a token limited to the request's scopes.

use http_auth::ChallengeRef;
use http_auth::parser::ChallengeParser;

/// A challenge ukpm can answer, from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service to ask a token for.
        service: Option<String>,
        /// The scope the registry suggested.
        scope: Option<String>,
    },
}

impl Challenge {
    /// The challenge ukpm answers among those of one header value; `None` when it offers no
    /// scheme ukpm speaks (or no Bearer challenge with a realm).
    pub fn parse(header: &str) -> Option<Challenge> {
        Challenge::select([header])
    }

    /// The challenge ukpm answers among those of every `WWW-Authenticate` value of a response:
    /// the first usable Bearer one, else Basic. Unknown schemes are skipped; a value that stops
    /// following the grammar contributes the challenges parsed before that point.
    pub fn select<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let mut basic = None;
        for value in values {
            for parsed in ChallengeParser::new(value) {
                let Ok(parsed) = parsed else {
                    tracing::debug!(value, "a WWW-Authenticate value does not follow RFC 7235");
                    break;
                };
                match Challenge::from_parsed(&parsed) {
                    Some(bearer @ Challenge::Bearer { .. }) => return Some(bearer),
                    Some(Challenge::Basic) => basic = Some(Challenge::Basic),
                    None => {}
                }
            }
        }
        basic
    }

    fn from_parsed(parsed: &ChallengeRef<'_>) -> Option<Challenge> {
        let param = |name: &str| {
            parsed
                .params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.to_unescaped())
        };
        if parsed.scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if parsed.scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: param("realm").filter(|r| !r.is_empty())?,
                service: param("service"),
                scope: param("scope"),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn parses_bearer_challenges_with_commas_in_quotes() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="http://127.0.0.1:5081/token",service="test-registry",scope="repository:a/b:pull,push""#,
            ),
            Some(bearer(
                "http://127.0.0.1:5081/token",
                Some("test-registry"),
                Some("repository:a/b:pull,push")
            ))
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn prefers_bearer_among_several_challenges_in_one_header() {
        let expected = Some(bearer("https://auth.example/token", Some("reg"), None));
        for header in [
            r#"Bearer realm="https://auth.example/token",service="reg", Basic realm="r""#,
            r#"Basic realm="a, b", Bearer realm="https://auth.example/token", service="reg""#,
            r#"Basic realm="r",Bearer realm="https://auth.example/token",service="reg""#,
        ] {
            assert_eq!(Challenge::parse(header), expected, "{header}");
        }
        // A scope holding commas, spaces and an escaped quote, between two challenges.
        assert_eq!(
            Challenge::parse(
                r#"Basic realm="x", Bearer realm="https://a/t",scope="repository:a:pull,push repository:b:pull",service="say \"hi\"", Basic realm="y""#,
            ),
            Some(bearer(
                "https://a/t",
                Some(r#"say "hi""#),
                Some("repository:a:pull,push repository:b:pull")
            ))
        );
    }

    #[test]
    fn scheme_and_parameter_names_ignore_case_and_values_may_be_tokens() {
        assert_eq!(
            Challenge::parse(r#"BEARER Realm="https://a/t", SERVICE=registry.example, Scope=x"#),
            Some(bearer("https://a/t", Some("registry.example"), Some("x")))
        );
        assert_eq!(Challenge::parse("bAsIc realm=users"), Some(Challenge::Basic));
    }

    #[test]
    fn unknown_schemes_are_skipped() {
        assert_eq!(
            Challenge::parse(
                r#"Negotiate, Digest realm="d", nonce="n", qop="auth,auth-int", Basic realm="b""#
            ),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="d", nonce="n""#),
            None,
            "Digest is not spoken"
        );
        // A Bearer challenge without a realm cannot be answered; Basic can.
        assert_eq!(
            Challenge::parse(r#"Bearer service="x", Basic realm="b""#),
            Some(Challenge::Basic)
        );
    }

    #[test]
    fn several_header_lines_are_read_together() {
        let lines = [r#"Basic realm="b""#, r#"Bearer realm="https://a/t",service="s""#];
        assert_eq!(
            Challenge::select(lines),
            Some(bearer("https://a/t", Some("s"), None))
        );
        assert_eq!(
            Challenge::select([r#"Newfangled x="y""#, r#"Basic realm="b""#]),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::select([]), None);
    }

    #[test]
    fn a_broken_value_keeps_what_parsed_before_it() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="b", error error"#),
            Some(Challenge::Basic)
        );
        // An unterminated quote breaks the Bearer challenge; the other line still counts.
        assert_eq!(
            Challenge::select([r#"Bearer realm="https://a/t"#, r#"Basic realm="b""#]),
            Some(Challenge::Basic)
        );
    }
}
