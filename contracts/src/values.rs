//! Validated value types shared by every message. Constructors check; deserialisation goes
//! through the same checks, so an invalid value never exists in memory.

use core::fmt;
use core::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    /// Money amounts are never negative.
    #[error("amount must be at least 0 minor units, got {0}")]
    NegativeMoney(i64),
    /// A quantity of zero, or one too large for the stores' integer columns.
    #[error("quantity must be between 1 and {max}, got {got}", max = Quantity::MAX)]
    QuantityOutOfRange {
        /// The rejected value.
        got: i64,
    },
    /// A product id of the wrong length or with characters outside `[A-Za-z0-9_-]`.
    #[error(
        "product id must be 1 to {max} characters of A-Z, a-z, 0-9, '_' or '-', got {0:?}",
        max = ProductId::MAX_LEN
    )]
    ProductId(String),
}

/// An amount of money in integer minor units (cents), never negative.
///
/// Floats never carry money here: `Money(1999)` is 19.99 in a two-decimal currency.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

impl Money {
    /// No money.
    pub const ZERO: Money = Money(0);

    /// `minor_units` as money; negative amounts are rejected.
    pub const fn new(minor_units: i64) -> Result<Money, InvalidValue> {
        if minor_units < 0 {
            return Err(InvalidValue::NegativeMoney(minor_units));
        }
        Ok(Money(minor_units))
    }

    /// The amount in minor units.
    pub const fn minor_units(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `self - other`, or `None` if the result would be negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0
            .checked_sub(other.0)
            .filter(|&difference| difference >= 0)
            .map(Money)
    }

    /// `self × quantity`, or `None` on overflow.
    pub fn checked_mul(self, quantity: Quantity) -> Option<Money> {
        self.0.checked_mul(i64::from(quantity.get())).map(Money)
    }
}

impl TryFrom<i64> for Money {
    type Error = InvalidValue;
    fn try_from(minor_units: i64) -> Result<Self, Self::Error> {
        Money::new(minor_units)
    }
}

impl From<Money> for i64 {
    fn from(money: Money) -> i64 {
        money.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A count of goods: at least 1, at most [`Quantity::MAX`] (so it fits a PostgreSQL `integer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(NonZeroU32);

impl Quantity {
    /// The largest quantity, `i32::MAX`.
    pub const MAX: u32 = i32::MAX as u32;

    /// `count` as a quantity; zero, negative and too-large counts are rejected.
    pub fn new(count: i64) -> Result<Quantity, InvalidValue> {
        u32::try_from(count)
            .ok()
            .filter(|&count| count <= Self::MAX)
            .and_then(NonZeroU32::new)
            .map(Quantity)
            .ok_or(InvalidValue::QuantityOutOfRange { got: count })
    }

    /// The count.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidValue;
    fn try_from(count: i64) -> Result<Self, Self::Error> {
        Quantity::new(count)
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> u32 {
        quantity.get()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.get())
    }
}

/// A product's identifier: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductId(String);

impl ProductId {
    /// The longest product id.
    pub const MAX_LEN: usize = 64;

    /// `id` as a product id, if it has the allowed length and characters.
    pub fn new(id: impl Into<String>) -> Result<ProductId, InvalidValue> {
        let id = id.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if id.is_empty() || id.len() > Self::MAX_LEN || !id.chars().all(allowed) {
            return Err(InvalidValue::ProductId(id));
        }
        Ok(ProductId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductId {
    type Error = InvalidValue;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        ProductId::new(id)
    }
}

impl From<ProductId> for String {
    fn from(id: ProductId) -> String {
        id.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) id.
            pub fn generate() -> Self {
                $name(Uuid::now_v7())
            }

            /// The id as a UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                $name(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, formatter)
            }
        }

        impl core::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map($name)
            }
        }
    };
}

uuid_id!(
    /// An order's id; also the correlation id of every message about the order.
    OrderId
);
uuid_id!(
    /// A customer's id.
    CustomerId
);
uuid_id!(
    /// A payment's id.
    PaymentId
);
uuid_id!(
    /// A message's id: the key consumers deduplicate on.
    MessageId
);
