//! I/O errors as people read them, for every reader of files, sockets and processes.

/// An I/O error's reason without Rust's "(os error N)" suffix.
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_error_suffix_goes() {
        let err = std::io::Error::from_raw_os_error(2);
        assert!(err.to_string().contains("(os error 2)"));
        assert_eq!(
            io_reason(&err),
            err.to_string().replace(" (os error 2)", "")
        );
        let plain = std::io::Error::other("cut short");
        assert_eq!(io_reason(&plain), "cut short");
    }
}
