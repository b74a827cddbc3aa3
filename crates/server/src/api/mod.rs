pub mod admin;
pub mod auth;
pub mod imports;
pub mod jobs;
pub mod records;
