//! Money: integer minor units with an ISO 4217 code; arithmetic in `rust_decimal`, never f64.

use rust_decimal::Decimal;
use std::str::FromStr;

/// Currencies Corvid accepts, with their minor-unit exponent (ISO 4217).
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BDT", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("IDR", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LKR", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PKR", 2),
    ("QAR", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// Largest amount accepted in major units; keeps minor units far from i64 overflow.
pub const MAX_MAJOR: i64 = 1_000_000_000_000_000;

pub fn currency_exponent(code: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, e)| *e)
}

pub fn currencies() -> impl Iterator<Item = &'static str> {
    CURRENCIES.iter().map(|(c, _)| *c)
}

#[derive(Debug, PartialEq, Eq)]
pub enum MoneyError {
    NotANumber,
    TooManyDecimals(u32),
    Negative,
    TooLarge,
}

impl std::fmt::Display for MoneyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MoneyError::NotANumber => write!(f, "must be a decimal amount such as \"1500.00\""),
            MoneyError::TooManyDecimals(e) => write!(f, "has more than {e} decimal places for this currency"),
            MoneyError::Negative => write!(f, "must not be negative"),
            MoneyError::TooLarge => write!(f, "is too large"),
        }
    }
}

/// Parses a major-unit amount ("1500000.00", "12", 99.5) into minor units.
pub fn parse_minor(text: &str, exponent: u32) -> Result<i64, MoneyError> {
    let d = Decimal::from_str(text.trim()).map_err(|_| MoneyError::NotANumber)?;
    to_minor(d, exponent)
}

pub fn to_minor(d: Decimal, exponent: u32) -> Result<i64, MoneyError> {
    if d.is_sign_negative() && !d.is_zero() {
        return Err(MoneyError::Negative);
    }
    if d > Decimal::from(MAX_MAJOR) {
        return Err(MoneyError::TooLarge);
    }
    let d = d.normalize();
    if d.scale() > exponent {
        return Err(MoneyError::TooManyDecimals(exponent));
    }
    let minor = d * Decimal::from(10i64.pow(exponent));
    i64::try_from(minor).map_err(|_| MoneyError::TooLarge)
}

/// Formats minor units as a major-unit decimal string with the currency's exponent.
pub fn format_minor(minor: i64, exponent: u32) -> String {
    Decimal::new(minor, exponent).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_minor("1500000.00", 2), Ok(150_000_000));
        assert_eq!(parse_minor("12", 2), Ok(1200));
        assert_eq!(parse_minor("12.5", 2), Ok(1250));
        assert_eq!(format_minor(150_000_000, 2), "1500000.00");
        assert_eq!(format_minor(7, 0), "7");
        assert_eq!(format_minor(1234, 3), "1.234");
        assert_eq!(parse_minor("1.001", 2), Err(MoneyError::TooManyDecimals(2)));
        assert_eq!(parse_minor("-1", 2), Err(MoneyError::Negative));
        assert_eq!(parse_minor("abc", 2), Err(MoneyError::NotANumber));
        assert_eq!(parse_minor("1e30", 2), Err(MoneyError::NotANumber));
        assert!(parse_minor("99999999999999999999", 2).is_err());
    }
}
