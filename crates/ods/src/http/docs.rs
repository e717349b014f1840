//! The OpenAPI document: its root (info, tags, security schemes) and the error answers
//! shared by many operations. The operations themselves come from the handlers'
//! `#[utoipa::path]` attributes, collected by the `OpenApiRouter` that also routes them,
//! so no route exists undocumented.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// A stage as requests take it: `Dev`, `Test` or `Prod`, in any letter case.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    pattern = r"^[\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([Dd][Ee][Vv]|[Tt][Ee][Ss][Tt]|[Pp][Rr][Oo][Dd])[\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    example = "Prod"
)]
#[allow(dead_code)]
pub struct StageName(String);

/// Raw bytes (a file, a chunk), for request and response bodies.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Binary(Vec<u8>);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Open Distribution Server (ODS) API",
        description = "The admin API (/api/admin, byte-compatible with the original's examples, \
            plus packages, users, tokens, jobs and events), the peer API (/api/ods, \
            server to server, signed) and client downloads. Every /api/admin call needs \
            HTTP Basic or Authorization: Bearer <token> (create tokens at /api/admin/tokens); \
            each operation says the role it needs (admin > uploader > viewer). \
            Errors are {\"error\": {\"code\", \"message\"}}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    servers((url = "/")),
    security(("basicAuth" = []), ("bearerAuth" = [])),
    tags(
        (name = "about", description = "This server's settings."),
        (name = "system", description = "Machine figures."),
        (name = "packages", description = "Packages: list, upload, stage, delete."),
        (name = "network", description = "Other ODS servers this one syncs with."),
        (name = "users", description = "Accounts and roles."),
        (name = "tokens", description = "API tokens."),
        (name = "jobs", description = "The durable background job queue."),
        (name = "events", description = "What happened: uploads, syncs, conflicts, peers."),
        (name = "notifications", description = "Webhooks (Standard Webhooks 1.0) and email for events."),
        (name = "downloads", description = "Client downloads (Jamf distribution point layout too)."),
        (name = "jamf", description = "Jamf Pro instances: package records, their state, drift."),
        (name = "integrations", description = "What other systems call: the Jamf Pro webhook receiver."),
        (name = "meta", description = "This document."),
        (name = "peer", description = "Server-to-server API (/api/ods), signed with the link's pair secret."),
    ),
    components(schemas(ErrorBody)),
    modifiers(&Components)
)]
pub struct ApiDoc;

struct Components;

impl Modify for Components {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from POST /api/admin/tokens (ods_...)."))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "jamfWebhookToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-ODS-Webhook-Token",
                "ODS_JAMF_WEBHOOK_SECRET, for Jamf Pro webhooks with header authentication \
                 (with Basic authentication, the secret is the password, any user name).",
            ))),
        );
        c.add_security_scheme(
            "peerSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::sync::auth::SIG_HEADER,
                "Peer requests carry X-ODS-Iss (the sender's ISS) and X-ODS-Signature: \
                 t=<unix seconds>,n=<nonce>,s=<hex HMAC-SHA256>, keyed with the link's pair \
                 secret (for POST /api/ods/register, the receiver's registration key), over \
                 sender ISS, receiver ISS, method, path and query, the SHA-256 of the body, \
                 the time and the nonce. Stale, replayed, misaddressed or forged requests get 401.",
            ))),
        );
        for (name, resp) in shared_responses() {
            c.responses.insert(name.to_string(), RefOr::T(resp));
        }
    }
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(RefOr::Ref(Ref::from_schema_name(ErrorBody::name())))),
    )
}

/// The error answers referenced from operations, by component name.
fn shared_responses() -> Vec<(&'static str, Response)> {
    vec![
        (
            "BadRequest",
            error_response("The request is malformed or a field is invalid; nothing changed.")
                .build(),
        ),
        (
            "Unauthorized",
            error_response("No credentials, or wrong ones.")
                .header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(Some(String::schema()))
                        .description(Some("Basic realm=\"ODS\", charset=\"UTF-8\""))
                        .build(),
                )
                .build(),
        ),
        (
            "Forbidden",
            error_response("The caller's role does not allow this.").build(),
        ),
        ("NotFound", error_response("No such resource.").build()),
        (
            "Conflict",
            error_response("The request conflicts with the current state.").build(),
        ),
        (
            "PayloadTooLarge",
            error_response("The body is larger than this endpoint takes.").build(),
        ),
        (
            "UnsupportedMediaType",
            error_response("The body is not of the content type this endpoint takes.").build(),
        ),
        (
            "TooManyRequests",
            error_response("Too many failed logins from this address or for this account.")
                .header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(u64::schema()))
                        .description(Some("Seconds to wait before trying again."))
                        .build(),
                )
                .build(),
        ),
        (
            "InternalError",
            error_response("A server-side failure; the server log has the details.").build(),
        ),
        (
            "PeerAuthFailed",
            error_response(
                "The peer request is unsigned, stale, replayed, misaddressed, forged or \
                 from a server not registered here.",
            )
            .build(),
        ),
    ]
}

fn refs(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, name)| {
            (
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(*name)),
            )
        })
        .collect()
}

/// Declares an `IntoResponses` type answering with shared error responses.
macro_rules! shared {
    ($(#[$doc:meta])* $name:ident: $($status:literal => $resp:literal),+) => {
        $(#[$doc])*
        pub struct $name;
        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                refs(&[$(($status, $resp)),+])
            }
        }
    };
}

shared!(
    /// What every admin operation can answer: no or bad credentials, a role too low,
    /// the login limiter, a server failure.
    AdminErrors: "401" => "Unauthorized", "403" => "Forbidden", "429" => "TooManyRequests", "500" => "InternalError"
);
shared!(BadRequest: "400" => "BadRequest");
shared!(NotFound: "404" => "NotFound");
shared!(Conflict: "409" => "Conflict");
shared!(
    /// A JSON body: malformed or invalid (400), too large (413), not JSON (415).
    JsonErrors: "400" => "BadRequest", "413" => "PayloadTooLarge", "415" => "UnsupportedMediaType"
);
shared!(
    /// What every peer operation can answer.
    PeerErrors: "401" => "PeerAuthFailed", "500" => "InternalError"
);
shared!(Internal: "500" => "InternalError");
shared!(
    /// When downloads need HTTP Basic: wrong or no credentials, the login limiter.
    DownloadAuthErrors: "401" => "Unauthorized", "429" => "TooManyRequests"
);
shared!(TooLarge: "413" => "PayloadTooLarge");
