//! Logins that need the user: the authorization-code grant with PKCE (RFC 6749 §4.1,
//! RFC 7636) and the device authorization grant (RFC 8628).

mod authorization;
mod device;
mod pkce;

pub use authorization::{AuthorizationError, AuthorizationRequest};
pub(crate) use authorization::{PendingAuthorization, authorization_url, parse_callback};
pub use device::{DEFAULT_INTERVAL, DeviceAuthorization, SLOW_DOWN_STEP};
pub(crate) use device::{device_authorization_request, parse_device_response};
pub use pkce::{Pkce, s256};
