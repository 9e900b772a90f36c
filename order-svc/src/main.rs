#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::entrypoint::main("order-svc", order_svc::Config::from_env, order_svc::run).await
}
