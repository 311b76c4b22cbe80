//! Routes registered together with their description: every API module builds its
//! [`Routes`] with `.get(path, handler, doc)`, `.post(…)`, …, each taking the
//! [`Doc`] of that operation (tag, summary, who may call it, body, success status).
//! `api::app` mounts the routers and `openapi.rs` generates the document from the same
//! registrations, so a route cannot exist without its description nor a description
//! without its route.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use super::AppState;
use plinth_core::manifest::Role;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials.
    Public,
    /// A tenant API key with at least this role.
    Tenant(Role),
    /// The operator token.
    Operator,
    /// A publisher upload token.
    Publisher,
}

/// What an operation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing.
    None,
    /// A JSON object.
    Json,
    /// Raw bytes.
    Binary,
}

impl Access {
    /// Any tenant user (`read-only` and up).
    pub const READER: Access = Access::Tenant(Role::ReadOnly);
    /// A tenant `member` and up.
    pub const MEMBER: Access = Access::Tenant(Role::Member);
    /// A tenant `manager` and up.
    pub const MANAGER: Access = Access::Tenant(Role::Manager);
    /// A tenant `admin` or `owner`.
    pub const ADMIN: Access = Access::Tenant(Role::Admin);
}

/// The description of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    /// The group it is listed under.
    pub tag: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it takes.
    pub body: Body,
    /// Its success status.
    pub status: u16,
}

/// Describe an operation: listed under `tag`, doing `summary`, callable with `access`;
/// no body and `200` unless [`Doc::json`], [`Doc::binary`], [`Doc::status`] say
/// otherwise.
pub const fn doc(tag: &'static str, summary: &'static str, access: Access) -> Doc {
    Doc {
        tag,
        summary,
        access,
        body: Body::None,
        status: 200,
    }
}

impl Doc {
    /// It takes a JSON object.
    pub const fn json(self) -> Doc {
        Doc {
            body: Body::Json,
            ..self
        }
    }

    /// It takes raw bytes.
    pub const fn binary(self) -> Doc {
        Doc {
            body: Body::Binary,
            ..self
        }
    }

    /// It answers `status` on success.
    pub const fn status(self, status: u16) -> Doc {
        Doc { status, ..self }
    }
}

/// One registered operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Lowercase HTTP method.
    pub method: &'static str,
    /// Path template (`/api/v1/objects/{name}`).
    pub path: &'static str,
    /// Its description.
    pub doc: Doc,
}

/// A router and the description of every operation it serves.
#[derive(Debug, Default)]
pub struct Routes {
    router: Router<AppState>,
    ops: Vec<Op>,
    /// Paths served by the plugin gateway, described per installation instead.
    gateways: Vec<&'static str>,
    /// Record routes served for every object, described per object instead.
    per_object: Vec<&'static str>,
}

impl Routes {
    /// No routes.
    pub fn new() -> Routes {
        Routes::default()
    }

    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<AppState>, doc: Doc) -> Routes {
        self.router = self.router.route(path, route);
        self.ops.push(Op { method, path, doc });
        self
    }

    /// `GET path`.
    pub fn get<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("get", path, get(handler), doc)
    }

    /// `POST path`.
    pub fn post<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("post", path, post(handler), doc)
    }

    /// `PUT path`.
    pub fn put<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("put", path, put(handler), doc)
    }

    /// `PATCH path`.
    pub fn patch<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("patch", path, patch(handler), doc)
    }

    /// `DELETE path`.
    pub fn delete<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("delete", path, delete(handler), doc)
    }

    /// A route whose method router the caller built (to add a layer to it, such as a
    /// larger body limit); it must serve `method` only.
    pub fn route(self, method: Method, path: &'static str, route: MethodRouter<AppState>, doc: Doc) -> Routes {
        let method = match method {
            Method::GET => "get",
            Method::POST => "post",
            Method::PUT => "put",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            other => panic!("the API does not serve {other}"),
        };
        self.add(method, path, route, doc)
    }

    /// The plugin gateway at `path`: any method, described per installation from the
    /// plugins' manifests rather than here.
    pub fn gateway(mut self, path: &'static str, route: MethodRouter<AppState>) -> Routes {
        self.router = self.router.route(path, route);
        self.gateways.push(path);
        self
    }

    /// A records route served for every object (`{object}` in the path): the
    /// document describes it once per standard and custom object instead.
    pub fn per_object(mut self, path: &'static str, route: MethodRouter<AppState>) -> Routes {
        self.router = self.router.route(path, route);
        if !self.per_object.contains(&path) {
            self.per_object.push(path);
        }
        self
    }

    /// These routes and `other`'s.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.ops.extend(other.ops);
        self.gateways.extend(other.gateways);
        self.per_object.extend(other.per_object);
        self
    }

    /// The descriptions.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The gateway paths.
    pub fn gateways(&self) -> &[&'static str] {
        &self.gateways
    }

    /// The paths served for every object.
    pub fn per_object_paths(&self) -> &[&'static str] {
        &self.per_object
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
