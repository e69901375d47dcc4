//! A QR code of a device's setup link, drawn as SVG by the server, so that
//! the phone's app can scan it off the organiser's screen: no script on
//! the page draws it, and nothing is fetched from the internet.
//!
//! The picture is a white square with the code's four-module quiet zone
//! and one black `<path>` of the dark modules, a horizontal run of them per
//! subpath, one unit a module; the same text always gives the same
//! picture. Its size follows the text's, which is bounded by [`MAX_TEXT`].

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};

/// The longest text drawn (a code of version 27 at most, 125 modules a
/// side): a setup link is a few hundred bytes, and a denser code is hard
/// for a phone's camera to read off a screen.
pub const MAX_TEXT: usize = 1024;
/// Modules of blank border around the code, as the standard asks.
const QUIET: usize = 4;
/// Pixels a module is drawn as, unless the page scales the picture.
const MODULE_PX: usize = 4;

/// Why no QR code was drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// The text is longer than [`MAX_TEXT`].
    #[error("the text is {0} bytes long; a QR code here holds at most {MAX_TEXT}")]
    TooLong(usize),
    /// The encoder refused it.
    #[error("the text cannot be encoded as a QR code: {0}")]
    Encoding(String),
}

/// `text` as a QR code (error correction level M), in SVG markup.
pub fn svg(text: &str) -> Result<String, QrError> {
    if text.len() > MAX_TEXT {
        return Err(QrError::TooLong(text.len()));
    }
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|err| QrError::Encoding(err.to_string()))?;
    let width = code.width();
    let side = width + 2 * QUIET;
    let mut path = String::new();
    for (y, row) in code.to_colors().chunks(width).enumerate() {
        let mut x = 0;
        while x < row.len() {
            if row[x] == Color::Light {
                x += 1;
                continue;
            }
            let start = x;
            while x < row.len() && row[x] == Color::Dark {
                x += 1;
            }
            let run = x - start;
            // Writing into a String cannot fail.
            let _ = write!(path, "M{} {}h{run}v1h-{run}z", start + QUIET, y + QUIET);
        }
    }
    let pixels = side * MODULE_PX;
    Ok(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{pixels}" height="{pixels}" viewBox="0 0 {side} {side}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d="{path}"/></svg>"##
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The picture read back as a QR reader sees it: its dark runs
    /// rasterised at `scale` pixels a module.
    struct Picture {
        side: usize,
        dark: Vec<bool>,
    }

    impl Picture {
        /// Parses what [`svg`] writes, checking its shape as it goes.
        fn parse(svg: &str) -> Self {
            let rest = svg
                .strip_prefix(r#"<svg xmlns="http://www.w3.org/2000/svg" "#)
                .expect("an SVG element");
            assert!(rest.ends_with("\"/></svg>"), "{svg}");
            let view_box = rest
                .split_once(r#"viewBox="0 0 "#)
                .and_then(|(_, after)| after.split_once('"'))
                .map(|(inside, _)| inside)
                .expect("a viewBox");
            let (width, height) = view_box.split_once(' ').expect("two sizes");
            assert_eq!(width, height, "a square");
            let side: usize = width.parse().expect("a size");
            assert_eq!(svg.matches("<path").count(), 1, "one path");
            let d = svg
                .split_once(r#" d=""#)
                .and_then(|(_, after)| after.split_once('"'))
                .map(|(inside, _)| inside)
                .expect("a path");
            let mut dark = vec![false; side * side];
            for run in d.split('M').filter(|run| !run.is_empty()) {
                let body = run.strip_suffix('z').expect("a closed subpath");
                let (at, shape) = body.split_once('h').expect("a run");
                let (x, y) = at.split_once(' ').expect("a point");
                let (x, y): (usize, usize) = (x.parse().expect("x"), y.parse().expect("y"));
                let (length, back) = shape.split_once("v1h-").expect("one module high");
                assert_eq!(length, back, "a rectangle");
                let length: usize = length.parse().expect("a length");
                assert!(x + length <= side - QUIET && y < side - QUIET, "{run}");
                for dx in 0..length {
                    dark[y * side + x + dx] = true;
                }
            }
            Self { side, dark }
        }

        fn is_dark(&self, x: usize, y: usize) -> bool {
            self.dark[y * self.side + x]
        }

        /// What rqrr reads in it, drawn at `scale` pixels a module.
        fn decode(&self, scale: usize) -> Vec<String> {
            let pixels = self.side * scale;
            let mut image = rqrr::PreparedImage::prepare_from_bitmap(pixels, pixels, |x, y| {
                self.is_dark(x / scale, y / scale)
            });
            image
                .detect_grids()
                .iter()
                .map(|grid| grid.decode().expect("a readable code").1)
                .collect()
        }
    }

    fn setup_link() -> String {
        // As long as a real one: a base64 configuration message.
        format!(
            "owntracks:///config?inline={}%3D",
            "eyJfdHlwZSI6ImNvbmZpZ3VyYXRpb24iL".repeat(9)
        )
    }

    #[test]
    fn the_picture_reads_back_as_the_link() {
        let link = setup_link();
        let picture = Picture::parse(&svg(&link).expect("a QR code"));
        assert_eq!(picture.decode(4), vec![link]);
    }

    #[test]
    fn the_picture_has_the_three_finder_patterns_inside_a_quiet_zone() {
        let picture = Picture::parse(&svg(&setup_link()).expect("a QR code"));
        let width = picture.side - 2 * QUIET;
        assert_eq!((width - 17) % 4, 0, "a QR code's width: {width}");
        for i in 0..picture.side {
            for j in 0..QUIET {
                let far = picture.side - 1 - j;
                assert!(
                    !picture.is_dark(i, j)
                        && !picture.is_dark(i, far)
                        && !picture.is_dark(j, i)
                        && !picture.is_dark(far, i),
                    "the quiet zone is blank"
                );
            }
        }
        // A 7 × 7 dark ring, a light ring, a 3 × 3 dark centre; at the
        // top left, top right and bottom left.
        for (left, top) in [(0, 0), (width - 7, 0), (0, width - 7)] {
            for dy in 0..7 {
                for dx in 0..7 {
                    let ring = dx == 0 || dy == 0 || dx == 6 || dy == 6;
                    let centre = (2..=4).contains(&dx) && (2..=4).contains(&dy);
                    assert_eq!(
                        picture.is_dark(QUIET + left + dx, QUIET + top + dy),
                        ring || centre,
                        "the finder pattern at ({left}, {top}), module ({dx}, {dy})"
                    );
                }
            }
        }
    }

    #[test]
    fn the_same_link_gives_the_same_picture_of_bounded_size() {
        let link = setup_link();
        let one = svg(&link).expect("a QR code");
        assert_eq!(one, svg(&link).expect("a QR code"));
        assert_ne!(one, svg(&format!("{link}x")).expect("a QR code"));
        assert!(one.len() < 32 * 1024, "{} bytes", one.len());
        let longest = svg(&"a".repeat(MAX_TEXT)).expect("the longest text drawn");
        let side = Picture::parse(&longest).side;
        assert!(side <= 125 + 2 * QUIET, "{side} modules a side");
        // At most a run per two modules, each at most `M132 132h125v1h-125z`.
        assert!(
            longest.len() <= side * side / 2 * 20 + 300,
            "{} bytes",
            longest.len()
        );
    }

    #[test]
    fn a_text_too_long_is_refused() {
        assert_eq!(
            svg(&"a".repeat(MAX_TEXT + 1)),
            Err(QrError::TooLong(MAX_TEXT + 1))
        );
    }
}
