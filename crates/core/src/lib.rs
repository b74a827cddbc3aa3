//! Corvid's domain: object metadata, validation and normalisation, money. Pure logic, no I/O.

pub mod access;
pub mod country;
pub mod disposable;
pub mod matching;
pub mod meta;
pub mod money;
pub mod names;
pub mod phone;
pub mod quality;
pub mod record;
pub mod role;
pub mod rules;
pub mod scoring;
pub mod spam;
pub mod validate;
pub mod value;

pub use meta::{object, objects, Field, FieldKind, ObjectDef, SqlType};
pub use record::Record;
pub use validate::{Changes, FieldError};
pub use value::Value;
