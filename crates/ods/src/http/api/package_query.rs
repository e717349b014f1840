//! The optional search, sort and paging of `GET /api/admin/packages` (the Packages
//! tab pages the same way), turned into the database's `PageQuery`.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::db;
use crate::db::packages::SortKey;
use crate::error::{ApiError, ApiResult};

/// Sort direction.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Optional search, sort and paging, done in the database. Without any of them the
/// answer is every package by id, as the seed's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only packages whose filename contains this text (any letter case; control characters are ignored).
    #[param(max_length = 255)]
    pub q: Option<String>,
    /// Sort by this column [default: id].
    #[param(inline)]
    pub sort: Option<SortKey>,
    /// Sort direction [default: asc].
    #[param(inline)]
    pub order: Option<SortOrder>,
    /// Skip this many packages [default: 0].
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// At most this many packages, 1 to 1000 [default: 1000 when another parameter is given].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

impl ListQuery {
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_none()
            && self.sort.is_none()
            && self.order.is_none()
            && self.offset.is_none()
            && self.limit.is_none()
    }

    /// The database query, or 400 for a value out of range.
    pub(crate) fn page(&self) -> ApiResult<db::packages::PageQuery> {
        let limit = self.limit.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be 1 to 1000",
            ));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::bad_request(
                "invalid_query",
                "offset must be 0 or more",
            ));
        }
        if self.q.as_ref().is_some_and(|q| q.chars().count() > 255) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "q may have at most 255 characters",
            ));
        }
        // Control characters cannot be in a filename: they are left out of the search.
        let search = self
            .q
            .as_deref()
            .map(|q| q.chars().filter(|c| !c.is_control()).collect::<String>())
            .map(|q| q.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok(db::packages::PageQuery {
            search,
            sort: self.sort.unwrap_or(SortKey::Id),
            desc: matches!(self.order, Some(SortOrder::Desc)),
            offset,
            limit,
        })
    }
}
