//! Corvid's domain: object metadata, validation and normalisation, money. Pure logic, no I/O.

pub mod country;
pub mod meta;
pub mod money;
pub mod record;
pub mod role;
pub mod validate;
pub mod value;

pub use meta::{object, objects, Field, FieldKind, ObjectDef, SqlType};
pub use record::Record;
pub use validate::{Changes, FieldError};
pub use value::Value;
