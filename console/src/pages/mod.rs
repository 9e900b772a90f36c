//! The console's pages, each server-rendered HTML (maud escapes every value it writes).

pub(crate) mod dead_letters;
pub(crate) mod layout;
pub(crate) mod orders;
pub(crate) mod saga;
pub(crate) mod sign_in;
