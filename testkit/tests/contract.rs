//! The port contract (`testkit::contract`) against the in-memory fakes of `safelight::testing`;
//! the `contract` suite of `safelight-e2e` runs the same rules against the AWS adapters.

use safelight::testing::{MemoryControl, MemoryDigests, MemoryImages, MemoryNotices, MemoryRates};

mod images {
    use super::*;
    testkit::image_repository_contract!(MemoryImages::default());
}

mod breaker {
    use super::*;
    testkit::breaker_contract!(MemoryControl::default());
}

mod leases {
    use super::*;
    testkit::lease_contract!(MemoryControl::default());
}

mod digests {
    use super::*;
    testkit::digest_index_contract!(MemoryDigests::default());
}

mod notices {
    use super::*;
    testkit::notice_log_contract!(MemoryNotices::default());
}

mod rates {
    use super::*;
    testkit::rate_counter_contract!(MemoryRates::default());
}
