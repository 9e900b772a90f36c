#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::entrypoint::main(
        "inventory-svc",
        inventory_svc::Config::from_env,
        inventory_svc::run,
    )
    .await
}
