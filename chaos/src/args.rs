//! Command-line arguments (`--name value` pairs; every one has a default).

use std::collections::HashMap;
use std::time::Duration;

use testkit::system::{BrokerPlacement, Profile, Svc};

/// The size and shape of a run.
#[derive(Clone, Debug)]
pub struct Args {
    /// Logical orders to place (`--orders`, default 300).
    pub orders: u64,
    /// Orders per second (`--rate`, default 20).
    pub rate: u64,
    /// Service kills (`--kills`, default 3).
    pub kills: u64,
    /// Replicas per service (`--replicas order=2,payment=2`; default one each).
    pub replicas: HashMap<Svc, usize>,
    /// The generator's seed (`--seed`, default: the clock).
    pub seed: u64,
    /// `ORDER_SAGA_TIMEOUT_SECS` of the system (`--saga-timeout`, default 15).
    pub saga_timeout_secs: u64,
    /// How long to wait for quiescence after the faults stop (`--quiesce-timeout`, default 180 s).
    pub quiesce_timeout: Duration,
    /// Release binaries (`--release`) instead of debug ones.
    pub profile: Profile,
    /// The run's broker: a node of its own (the default, so that it can be restarted and put
    /// under an alarm), a cluster of its own (`--cluster 3`), or the machine's shared broker
    /// (`--shared-broker`: no broker restart, alarm or node stop).
    pub broker: BrokerPlacement,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            orders: 300,
            rate: 20,
            kills: 3,
            replicas: HashMap::new(),
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(1),
            saga_timeout_secs: 15,
            quiesce_timeout: Duration::from_secs(180),
            profile: Profile::Debug,
            broker: BrokerPlacement::OwnNode,
        }
    }
}

fn service_named(name: &str) -> Result<Svc, String> {
    match name {
        "order" | "order-svc" => Ok(Svc::Order),
        "inventory" | "inventory-svc" => Ok(Svc::Inventory),
        "payment" | "payment-svc" => Ok(Svc::Payment),
        "notify" | "notify-svc" => Ok(Svc::Notify),
        other => Err(format!("unknown service {other:?}")),
    }
}

fn number(flag: &str, value: Option<String>) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{flag} takes a whole number, got {value:?}"))
}

impl Args {
    /// Parses `arguments` (without the program name).
    pub fn parse(arguments: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut args = Args::default();
        let mut arguments = arguments.into_iter();
        while let Some(flag) = arguments.next() {
            match flag.as_str() {
                "--orders" => args.orders = number(&flag, arguments.next())?,
                "--rate" => args.rate = number(&flag, arguments.next())?.max(1),
                "--kills" => args.kills = number(&flag, arguments.next())?,
                "--seed" => args.seed = number(&flag, arguments.next())?,
                "--saga-timeout" => {
                    args.saga_timeout_secs = number(&flag, arguments.next())?.max(1)
                }
                "--quiesce-timeout" => {
                    args.quiesce_timeout = Duration::from_secs(number(&flag, arguments.next())?)
                }
                "--release" => args.profile = Profile::Release,
                "--shared-broker" => args.broker = BrokerPlacement::Shared,
                "--cluster" => {
                    let nodes = number(&flag, arguments.next())?;
                    if !(2..=7).contains(&nodes) {
                        return Err(format!("--cluster takes 2 to 7 nodes, got {nodes}"));
                    }
                    args.broker = BrokerPlacement::Cluster(usize::try_from(nodes).unwrap_or(3));
                }
                "--replicas" => {
                    let value = arguments
                        .next()
                        .ok_or("--replicas needs a value such as order=2,payment=2")?;
                    for pair in value.split(',') {
                        let (name, count) = pair
                            .split_once('=')
                            .ok_or_else(|| format!("bad replica count {pair:?}"))?;
                        let count = count
                            .parse()
                            .map_err(|_| format!("bad replica count {pair:?}"))?;
                        args.replicas.insert(service_named(name)?, count);
                    }
                }
                "--help" | "-h" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(args)
    }
}

/// What `--help` prints.
pub const USAGE: &str = "usage: chaos [--orders N] [--rate N] [--kills N] [--replicas order=2,payment=2] \
[--seed N] [--saga-timeout SECS] [--quiesce-timeout SECS] [--release] [--cluster NODES | --shared-broker]";
