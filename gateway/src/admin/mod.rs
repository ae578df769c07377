//! Owner-facing administration: the Unix socket the CLI talks to and the LAN HTTPS UI,
//! both doors onto the same owner actions.

pub mod access;
pub mod actions;
pub mod answers;
pub mod camera_answers;
pub mod cameras;
pub mod cameras_onvif;
pub mod device_ref;
pub mod https;
pub mod quarantine;
pub mod socket;
pub mod tls;
pub mod web;
