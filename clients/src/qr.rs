//! Reading a pairing URI from a photo of the gateway's QR code (feature `qr`).

use crate::ClientError;

/// Decodes the first QR code in a PNG picture and returns its text (the pairing URI).
pub fn decode(picture: &[u8]) -> Result<String, ClientError> {
    let img = image::load_from_memory(picture)
        .map_err(|e| ClientError::Qr(format!("the picture cannot be read ({e})")))?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let grid = grids
        .first()
        .ok_or_else(|| ClientError::Qr("no QR code was found in the picture".into()))?;
    let (_, content) = grid
        .decode()
        .map_err(|e| ClientError::Qr(format!("the QR code cannot be decoded ({e})")))?;
    Ok(content)
}
