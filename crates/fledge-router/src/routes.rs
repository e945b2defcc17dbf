//! The traffic split a router is asked to set and reports back.

use crate::error::{Error, Result};

/// How traffic is split between the primary and the canary, and whether it is mirrored.
///
/// Weights are percentages; a valid split adds up to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Routes {
    /// Share of the traffic served by the primary, in percent.
    pub primary: u32,
    /// Share of the traffic served by the canary, in percent.
    pub canary: u32,
    /// Whether the primary's traffic is also mirrored to the canary.
    pub mirrored: bool,
}

impl Routes {
    /// All traffic to the primary, nothing mirrored: the state of a canary at rest.
    pub const INITIAL: Self = Self {
        primary: 100,
        canary: 0,
        mirrored: false,
    };

    /// A split of `primary`/`canary` percent without mirroring.
    pub fn weighted(primary: u32, canary: u32) -> Self {
        Self {
            primary,
            canary,
            mirrored: false,
        }
    }

    /// The same split with mirroring switched on or off.
    pub fn with_mirror(self, mirrored: bool) -> Self {
        Self { mirrored, ..self }
    }

    /// Checks that the weights are percentages that add up to 100.
    ///
    /// # Errors
    /// [`Error::InvalidRoutes`] when a weight is above 100 or the sum is not 100.
    pub fn validate(self) -> Result<Self> {
        let reason = if self.primary > 100 || self.canary > 100 {
            Some("each weight must be between 0 and 100")
        } else if self.primary + self.canary != 100 {
            Some("the weights must add up to 100")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidRoutes {
                primary: self.primary,
                canary: self.canary,
                reason,
            }),
            None => Ok(self),
        }
    }
}

impl std::fmt::Display for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "primary={} canary={}", self.primary, self.canary)?;
        if self.mirrored {
            f.write_str(" mirrored")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_must_add_up_to_one_hundred() {
        assert!(Routes::weighted(80, 20).validate().is_ok());
        assert!(Routes::weighted(0, 100).validate().is_ok());
        let err = Routes::weighted(80, 30).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid routes primary=80 canary=30: the weights must add up to 100"
        );
        let err = Routes::weighted(200, 0).validate().unwrap_err();
        assert!(err.to_string().contains("between 0 and 100"), "{err}");
    }
}
