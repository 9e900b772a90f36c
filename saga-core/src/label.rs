//! Stable names for states, events and effects.

use core::fmt::Debug;
use core::hash::Hash;

/// A closed set of values with stable, human-readable names.
///
/// States, events and effects of a saga are `Label`s. The name is what a service persists
/// (`orders.status = 'Reserved'`) and what diagrams print, so it must never change once data
/// exists; [`Label::from_name`] reads it back without any serialisation library.
///
/// Implement it with the [`labels!`](crate::labels) macro, which names every variant after
/// itself, or by hand when names must differ from the Rust identifiers.
pub trait Label: Copy + Eq + Ord + Hash + Debug + 'static {
    /// Every value, in declaration order. Validation and diagrams walk this list.
    const ALL: &'static [Self];

    /// The stable name of this value.
    fn name(self) -> &'static str;

    /// The value whose [`name`](Label::name) is `name`, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|value| value.name() == name)
    }
}

/// Declares a fieldless enum and implements [`Label`] and `Display` for it, naming each variant
/// after its identifier.
///
/// ```
/// saga_core::labels! {
///     /// Where a parcel is.
///     pub enum ParcelState { Packed, Shipped, Delivered }
/// }
/// use saga_core::Label;
/// assert_eq!(ParcelState::Shipped.name(), "Shipped");
/// assert_eq!(ParcelState::from_name("Delivered"), Some(ParcelState::Delivered));
/// assert_eq!(ParcelState::ALL.len(), 3);
/// assert_eq!(ParcelState::Packed.to_string(), "Packed");
/// ```
#[macro_export]
macro_rules! labels {
    (
        $(#[$enum_meta:meta])*
        $visibility:vis enum $enum_name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident ),+ $(,)?
        }
    ) => {
        $(#[$enum_meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $visibility enum $enum_name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $crate::Label for $enum_name {
            const ALL: &'static [Self] = &[$( Self::$variant ),+];

            fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => stringify!($variant) ),+
                }
            }
        }

        impl ::core::fmt::Display for $enum_name {
            fn fmt(&self, formatter: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                formatter.write_str($crate::Label::name(*self))
            }
        }
    };
}
