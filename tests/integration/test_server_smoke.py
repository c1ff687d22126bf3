from tests.support import ServerProcess


def test_server_serves_metadata_and_jwks(server: ServerProcess) -> None:
    with server.admin() as client:
        meta = client.get("/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == server.url
        assert client.get(meta["jwks_uri"]).json()["keys"]
