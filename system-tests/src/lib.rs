//! End-to-end tests of the order system live in `tests/`: the four services as separate
//! processes (`testkit::system`) against the real PostgreSQL and RabbitMQ, and the deployment
//! files checked against what the binaries read. This library is empty on purpose.
