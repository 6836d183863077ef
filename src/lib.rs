//! tokenflow: a sans-IO OAuth 2.0 token lifecycle.
