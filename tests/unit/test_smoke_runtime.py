from tessera.runtime import Runtime


def test_runtime_starts_with_a_signing_key_and_admin_token(runtime: Runtime) -> None:
    ring = runtime.keyring()
    assert ring.signing_key(runtime.clock.now()) is not None
    assert runtime.settings.admin_token_path.exists()
    assert runtime.admin.verify(runtime.settings.admin_token_path.read_text().strip())
