//! `/api/admin/packages/id/{id}` and `/api/admin/packages/name/{filename}`: the
//! unambiguous ways to name a package (a filename may be all digits, like an id). Each
//! operation is the one of `packages.rs`; `PackageRef` reads which form the route is.

use axum::extract::State;
use axum::http::StatusCode;

use super::packages::{
    DigestsQueued, Package, PackageDetail, PackageUpdate, compute_digests, delete_package,
    get_package, update_package,
};
use crate::app::App;
use crate::error::ApiResult;
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, JsonErrors, NotFound};
use crate::packages::PackageRef;

/// Declares the four package operations under one addressing form.
macro_rules! by_form {
    ($form:literal, $param:literal, $ty:ty, $what:literal,
     $get:ident, $delete:ident, $update:ident, $digests:ident) => {
        #[utoipa::path(get, path = concat!("/packages/", $form, "/{", $param, "}"), tag = "packages",
            description = concat!("One package by its ", $what, ", with its chunks. Needs the `viewer` role."),
            params(($param = $ty, Path, description = concat!("The package's ", $what, "."))),
            responses((status = 200, description = "The package.", body = PackageDetail), BadRequest, NotFound, AdminErrors))]
        pub async fn $get(
            app: State<App>,
            who: Principal,
            pkg: PackageRef,
        ) -> ApiResult<axum::Json<PackageDetail>> {
            get_package(app, who, pkg).await
        }

        #[utoipa::path(delete, path = concat!("/packages/", $form, "/{", $param, "}"), tag = "packages",
            description = concat!("Deletes the package with this ", $what, " here and, through sync, everywhere. Needs the `uploader` role."),
            params(($param = $ty, Path, description = concat!("The package's ", $what, "."))),
            responses((status = 204, description = "Deleted."), BadRequest, NotFound, AdminErrors))]
        pub async fn $delete(app: State<App>, who: Principal, pkg: PackageRef) -> ApiResult<StatusCode> {
            delete_package(app, who, pkg).await
        }

        #[utoipa::path(patch, path = concat!("/packages/", $form, "/{", $param, "}"), tag = "packages",
            description = concat!("Changes the stage of the package with this ", $what, ". Needs the `uploader` role."),
            params(($param = $ty, Path, description = concat!("The package's ", $what, "."))),
            request_body = PackageUpdate,
            responses((status = 200, description = "The package as it is now.", body = Package), NotFound, JsonErrors, AdminErrors))]
        pub async fn $update(
            app: State<App>,
            who: Principal,
            pkg: PackageRef,
            body: JsonBody<PackageUpdate>,
        ) -> ApiResult<axum::Json<Package>> {
            update_package(app, who, pkg, body).await
        }

        #[utoipa::path(post, path = concat!("/packages/", $form, "/{", $param, "}/digests"), tag = "packages",
            description = concat!("Asks for the SHA-512 and MD5 of the package with this ", $what, ". Needs the `uploader` role."),
            params(($param = $ty, Path, description = concat!("The package's ", $what, "."))),
            responses(
                (status = 200, description = "Already computed.", body = DigestsQueued),
                (status = 202, description = "Queued.", body = DigestsQueued),
                BadRequest,
                NotFound,
                AdminErrors
            ))]
        pub async fn $digests(
            app: State<App>,
            who: Principal,
            pkg: PackageRef,
        ) -> ApiResult<(StatusCode, axum::Json<DigestsQueued>)> {
            compute_digests(app, who, pkg).await
        }
    };
}

by_form!(
    "id",
    "id",
    i64,
    "database id",
    get_by_id,
    delete_by_id,
    update_by_id,
    digests_by_id
);
by_form!(
    "name",
    "filename",
    String,
    "filename",
    get_by_name,
    delete_by_name,
    update_by_name,
    digests_by_name
);
