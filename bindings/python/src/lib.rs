//! `tokenflow._core`: the sans-IO token lifecycle of the `tokenflow` crate as Python classes.
//! The drivers (httpx, requests, stores) are Python, in `python/tokenflow/`.

mod config;
mod errors;
mod flow;
mod outputs;
mod tokens;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<config::PyConfig>()?;
    m.add_class::<tokens::PyCredentials>()?;
    m.add_class::<tokens::PyStoredTokens>()?;
    m.add_class::<flow::PyTokenFlow>()?;
    m.add_class::<outputs::PyBearer>()?;
    m.add_class::<outputs::PyAccess>()?;
    m.add_class::<outputs::PyHttpRequest>()?;
    m.add_class::<outputs::PyIdle>()?;
    m.add_class::<outputs::TokensUpdated>()?;
    m.add_class::<outputs::TokensCleared>()?;
    m.add_class::<outputs::AccessReady>()?;
    m.add_class::<outputs::LoginRequiredEvent>()?;
    m.add_class::<outputs::Failed>()?;
    m.add_class::<outputs::OtherEvent>()?;
    Ok(())
}
