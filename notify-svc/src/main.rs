#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::entrypoint::main("notify-svc", notify_svc::Config::from_env, notify_svc::run).await
}
