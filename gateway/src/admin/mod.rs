//! Owner-facing administration: the Unix socket the CLI talks to and the LAN HTTPS UI.

pub mod https;
pub mod socket;
pub mod tls;
