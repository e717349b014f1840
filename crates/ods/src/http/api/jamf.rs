//! `/api/admin/jamf`: the Jamf Pro instances this server publishes package records to
//! (credentials are write-only: sealed at rest, never answered). Their record states,
//! drift report and reconcile are in `jamf_checks`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, jamf::InstanceFields, jamf::InstanceRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, JsonErrors, NotFound};
use crate::jamf as svc;
use crate::model::{Role, Stage, iso_seconds};

use super::about::parse_stage;

/// The checksum a record carries (JAMF.md §2). `SHA3_512` needs Jamf Pro 11.25+.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum HashType {
    #[serde(rename = "SHA_512")]
    Sha512,
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA3_512")]
    Sha3_512,
}

impl HashType {
    fn as_str(self) -> &'static str {
        match self {
            HashType::Sha512 => "SHA_512",
            HashType::Md5 => "MD5",
            HashType::Sha3_512 => "SHA3_512",
        }
    }
    fn from_db(s: &str) -> HashType {
        match s {
            "MD5" => HashType::Md5,
            "SHA3_512" => HashType::Sha3_512,
            _ => HashType::Sha512,
        }
    }
}

/// How ODS authenticates to Jamf Pro (write-only: never answered).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JamfAuth {
    Basic(BasicAuth),
    Oauth(OauthAuth),
}

/// A Jamf Pro account: `POST /api/v1/auth/token` with Basic.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: BasicTag,
    #[schema(min_length = 1, max_length = 255)]
    username: String,
    #[schema(min_length = 1, max_length = 1024)]
    password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BasicTag {
    Basic,
}

/// A Jamf Pro API client: `POST /api/oauth/token` with client credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OauthAuth {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: OauthTag,
    #[schema(min_length = 1, max_length = 255)]
    client_id: String,
    #[schema(min_length = 1, max_length = 1024)]
    client_secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OauthTag {
    Oauth,
}

/// Which kind of credentials an instance has.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    Basic,
    Oauth,
}

/// A new Jamf Pro instance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstance {
    /// A label [default: the URL's host]; surrounding spaces are trimmed.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: Option<String>,
    /// The Jamf Pro URL, e.g. `https://example.jamfcloud.com`.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]+$"
    )]
    url: String,
    auth: JamfAuth,
    /// The stage whose packages get records on this instance.
    #[schema(value_type = crate::http::docs::StageName)]
    stage: String,
    /// [default: SHA_512]
    hash_type: Option<HashType>,
    /// Publish a record only once the package is Public on every registered server of
    /// the stage that can be asked (not only here) [default: false].
    wait_for_all_servers: Option<bool>,
    /// The record's packageName: `{filename}` and `{stem}` (the name without its
    /// extension) are replaced [default: `{filename}`].
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    package_name: Option<String>,
    /// Delete the records ODS made when their package is deleted here (policies refer
    /// to records: off by default).
    delete_records: Option<bool>,
}

/// A change to an instance: absent fields stay; `auth` replaces the credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceUpdate {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: Option<String>,
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]+$"
    )]
    url: Option<String>,
    auth: Option<JamfAuth>,
    #[schema(value_type = Option<crate::http::docs::StageName>)]
    stage: Option<String>,
    hash_type: Option<HashType>,
    wait_for_all_servers: Option<bool>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    package_name: Option<String>,
    delete_records: Option<bool>,
}

/// A Jamf Pro instance as the API shows it (never its password or client secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct JamfInstance {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub auth: AuthKind,
    /// The Jamf Pro user name or the OAuth client id.
    pub username: Option<String>,
    pub stage: Stage,
    pub hash_type: HashType,
    pub wait_for_all_servers: bool,
    pub package_name: String,
    pub delete_records: bool,
    /// ISO 8601 (UTC).
    pub created: String,
    /// When every record was last checked, ISO 8601 (UTC); null until then.
    pub last_reconcile: Option<String>,
    /// Why the last check failed, if it did.
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JamfInstanceList {
    pub items: Vec<JamfInstance>,
}

fn instance(i: &InstanceRow) -> JamfInstance {
    JamfInstance {
        id: i.id,
        name: i.name.clone(),
        url: i.url.clone(),
        auth: if i.auth == "oauth" {
            AuthKind::Oauth
        } else {
            AuthKind::Basic
        },
        username: i.username.clone(),
        stage: i.stage,
        hash_type: HashType::from_db(&i.hash_type),
        wait_for_all_servers: i.wait_all,
        package_name: i.package_name.clone(),
        delete_records: i.delete_records,
        created: iso_seconds(i.created),
        last_reconcile: i.last_reconcile.map(iso_seconds),
        last_error: i.last_error.clone(),
    }
}

fn check_name(s: &str) -> ApiResult<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 255 || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 255 printable characters",
        ));
    }
    Ok(t.to_string())
}

fn check_url(s: &str) -> ApiResult<String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && s.chars().count() <= 2048
                && !r.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(s.to_string())
        }
        _ => Err(ApiError::bad_request(
            "invalid_url",
            "url must be an http:// or https:// URL without spaces (at most 2048 characters)",
        )),
    }
}

fn check_template(s: &str) -> ApiResult<String> {
    if s.is_empty() || s.chars().count() > 255 || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_package_name",
            "package_name must be 1 to 255 characters without control characters",
        ));
    }
    Ok(s.to_string())
}

fn check_secret(field: &str, s: &str, max: usize) -> ApiResult<()> {
    if s.is_empty() || s.chars().count() > max {
        return Err(ApiError::bad_request(
            "invalid_auth",
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// (auth kind, user name or client id, sealed secret)
fn seal_auth(app: &App, a: &JamfAuth) -> ApiResult<(String, Option<String>, Option<String>)> {
    Ok(match a {
        JamfAuth::Basic(BasicAuth {
            username, password, ..
        }) => {
            check_secret("username", username, 255)?;
            check_secret("password", password, 1024)?;
            (
                "basic".into(),
                Some(username.clone()),
                Some(app.sealer.seal(password)),
            )
        }
        JamfAuth::Oauth(OauthAuth {
            client_id,
            client_secret,
            ..
        }) => {
            check_secret("client_id", client_id, 255)?;
            check_secret("client_secret", client_secret, 1024)?;
            (
                "oauth".into(),
                Some(client_id.clone()),
                Some(app.sealer.seal(client_secret)),
            )
        }
    })
}

fn default_name(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| !h.is_empty() && h.chars().count() <= 255)
        .unwrap_or_else(|| "Jamf Pro".into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InstanceId {
    /// The instance's numeric id.
    #[allow(dead_code)]
    id: i64,
}

pub(super) async fn by_id(app: &App, id: &str) -> ApiResult<InstanceRow> {
    let id = super::path_id(id)?;
    db::jamf::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no Jamf Pro instance with id {id}")))
}

#[utoipa::path(
    get,
    path = "/jamf",
    tag = "jamf",
    description = "The Jamf Pro instances this server publishes package records to. Needs the `viewer` role.",
    responses((status = 200, description = "The instances.", body = JamfInstanceList), AdminErrors)
)]
pub async fn list_instances(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<JamfInstanceList>> {
    who.require(Role::Viewer)?;
    let items = db::jamf::list(&app.db)
        .await?
        .iter()
        .map(instance)
        .collect();
    Ok(axum::Json(JamfInstanceList { items }))
}

#[utoipa::path(
    post,
    path = "/jamf",
    tag = "jamf",
    description = "Adds a Jamf Pro instance; its records are checked at once. Credentials are sealed at rest and never answered. Instances are this server's own settings (not synced): configure each Jamf Pro on one server. Needs the `admin` role.",
    request_body = NewInstance,
    responses((status = 201, description = "The instance.", body = JamfInstance), JsonErrors, AdminErrors)
)]
pub async fn create_instance(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewInstance>,
) -> ApiResult<(StatusCode, axum::Json<JamfInstance>)> {
    who.require(Role::Admin)?;
    let url = check_url(&body.url)?;
    let name = match &body.name {
        Some(n) => check_name(n)?,
        None => default_name(&url),
    };
    let stage = parse_stage(&body.stage)?;
    let (auth, username, secret_sealed) = seal_auth(&app, &body.auth)?;
    let package_name = match &body.package_name {
        Some(t) => check_template(t)?,
        None => "{filename}".into(),
    };
    let fields = InstanceFields {
        name,
        url,
        auth,
        username,
        secret_sealed,
        stage,
        hash_type: body.hash_type.unwrap_or(HashType::Sha512).as_str().into(),
        wait_all: body.wait_for_all_servers.unwrap_or(false),
        package_name,
        delete_records: body.delete_records.unwrap_or(false),
    };
    let row = svc::create(&app, &fields)
        .await
        .map_err(|e| ApiError::internal("adding the Jamf Pro instance", e))?;
    tracing::info!(id = row.id, url = %crate::config::redact_url(&row.url), "Jamf Pro instance added");
    Ok((StatusCode::CREATED, axum::Json(instance(&row))))
}

#[utoipa::path(
    get,
    path = "/jamf/{id}",
    tag = "jamf",
    description = "One Jamf Pro instance. Needs the `viewer` role.",
    params(InstanceId),
    responses((status = 200, description = "The instance.", body = JamfInstance), BadRequest, NotFound, AdminErrors)
)]
pub async fn get_instance(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<JamfInstance>> {
    who.require(Role::Viewer)?;
    Ok(axum::Json(instance(&by_id(&app, &id).await?)))
}

#[utoipa::path(
    patch,
    path = "/jamf/{id}",
    tag = "jamf",
    description = "Changes an instance; absent fields stay as they are. A new URL or new credentials drop the cached token. Needs the `admin` role.",
    params(InstanceId),
    request_body = InstanceUpdate,
    responses((status = 200, description = "The instance as it is now.", body = JamfInstance), JsonErrors, NotFound, AdminErrors)
)]
pub async fn update_instance(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<InstanceUpdate>,
) -> ApiResult<axum::Json<JamfInstance>> {
    who.require(Role::Admin)?;
    let before = by_id(&app, &id).await?;
    let mut f = InstanceFields {
        name: before.name.clone(),
        url: before.url.clone(),
        auth: before.auth.clone(),
        username: before.username.clone(),
        secret_sealed: before.secret_sealed.clone(),
        stage: before.stage,
        hash_type: before.hash_type.clone(),
        wait_all: before.wait_all,
        package_name: before.package_name.clone(),
        delete_records: before.delete_records,
    };
    if let Some(n) = &body.name {
        f.name = check_name(n)?;
    }
    if let Some(u) = &body.url {
        f.url = check_url(u)?;
    }
    if let Some(a) = &body.auth {
        (f.auth, f.username, f.secret_sealed) = seal_auth(&app, a)?;
    }
    if let Some(s) = &body.stage {
        f.stage = parse_stage(s)?;
    }
    if let Some(h) = body.hash_type {
        f.hash_type = h.as_str().into();
    }
    if let Some(w) = body.wait_for_all_servers {
        f.wait_all = w;
    }
    if let Some(t) = &body.package_name {
        f.package_name = check_template(t)?;
    }
    if let Some(d) = body.delete_records {
        f.delete_records = d;
    }
    let row = svc::update(&app, &before, &f)
        .await
        .map_err(|e| ApiError::internal("changing the Jamf Pro instance", e))?;
    Ok(axum::Json(instance(&row)))
}

#[utoipa::path(
    delete,
    path = "/jamf/{id}",
    tag = "jamf",
    description = "Forgets an instance (its records in Jamf Pro stay). Needs the `admin` role.",
    params(InstanceId),
    responses((status = 204, description = "Removed."), BadRequest, NotFound, AdminErrors)
)]
pub async fn delete_instance(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let inst = by_id(&app, &id).await?;
    if !db::jamf::delete(&app.db, inst.id).await? {
        return Err(ApiError::not_found(format!(
            "no Jamf Pro instance with id {}",
            inst.id
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
