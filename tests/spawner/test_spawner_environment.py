"""Pure environment builders, against literal values."""

from __future__ import annotations

from astrokit_spawner.environment import (
    ClientTLSPaths,
    StoreSettings,
    cluster_environment,
    cluster_manager_command,
    dashboard_path,
    notebook_cluster_environment,
    notebook_command,
    safe_slug,
    store_environment,
    user_prefix,
)
from astrokit_spawner.profiles import Profile

PROFILE = Profile("medium", "Medium", "", 2.0, 4 * 1024**3, 3, 2, 2 * 1024**3)


def test_safe_slug():
    assert safe_slug("Ada.Lovelace@example.org") == "ada-lovelace-example-org"
    assert safe_slug("---") == "x"
    assert safe_slug("a" * 50, max_length=10) == "a" * 10


def test_user_prefix_quotes_the_name():
    assert user_prefix("file:///srv/store/", "ada") == (
        "file:///srv/store/shared",
        "file:///srv/store/users/ada",
    )
    assert user_prefix("s3://bucket/prefix", "a b/c") == (
        "s3://bucket/prefix/shared",
        "s3://bucket/prefix/users/a%20b%2Fc",
    )


def test_store_environment_file_store_sets_only_urls():
    env = store_environment(StoreSettings("file:///srv/store"), "ada")
    assert env == {
        "ASTROKIT_STORE_URL": "file:///srv/store",
        "ASTROKIT_SHARED_URL": "file:///srv/store/shared",
        "ASTROKIT_USER_URL": "file:///srv/store/users/ada",
    }


def test_store_environment_s3_store():
    settings = StoreSettings(
        store_url="s3://survey",
        s3_endpoint="http://127.0.0.1:9000",
        s3_anon=True,
        aws_access_key_id="key",
        aws_secret_access_key="secret",
        model_url="s3://survey/models/photoz.pt",
    )
    assert store_environment(settings, "bob") == {
        "ASTROKIT_STORE_URL": "s3://survey",
        "ASTROKIT_SHARED_URL": "s3://survey/shared",
        "ASTROKIT_USER_URL": "s3://survey/users/bob",
        "ASTROKIT_S3_ENDPOINT": "http://127.0.0.1:9000",
        "ASTROKIT_S3_ANON": "1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "ASTROKIT_MODEL_URL": "s3://survey/models/photoz.pt",
    }


def test_dashboard_path():
    assert dashboard_path("/user/ada/", 8787) == "/user/ada/proxy/8787/status"
    assert dashboard_path("/jh/user/ada/second/", 1) == "/jh/user/ada/second/proxy/1/status"


def test_notebook_cluster_environment():
    env = notebook_cluster_environment(
        profile=PROFILE,
        scheduler_address="tls://127.0.0.1:4000",
        tls=ClientTLSPaths("/s/ca.pem", "/s/client.pem", "/s/client-key.pem"),
        dashboard_url="/user/ada/proxy/4001/status",
    )
    assert env == {
        "ASTROKIT_SCHEDULER_ADDRESS": "tls://127.0.0.1:4000",
        "DASK_SCHEDULER_ADDRESS": "tls://127.0.0.1:4000",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "/s/ca.pem",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": "/s/client.pem",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": "/s/client-key.pem",
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "ASTROKIT_N_WORKERS": "3",
        "ASTROKIT_PROFILE": "medium",
        "ASTROKIT_DASHBOARD_URL": "/user/ada/proxy/4001/status",
        "DASK_DISTRIBUTED__DASHBOARD__LINK": "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status",
        "DASK_LABEXTENSION__FACTORY__MODULE": "astrokit.lab_cluster",
        "DASK_LABEXTENSION__FACTORY__CLASS": "ServerCluster",
        "DASK_LABEXTENSION__INITIAL": "[{'name': 'Your medium cluster'}]",
    }


def test_cluster_environment_drops_hub_credentials():
    base = {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/home/ada",
        "JUPYTERHUB_API_TOKEN": "secret",
        "JPY_API_TOKEN": "secret",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-ada",
        "ASTROKIT_STORE_URL": "file:///srv/store",
        "ASTROKIT_SERVER_ID": "ada-default-1234",
    }
    assert cluster_environment(base, threads_per_worker=2) == {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/home/ada",
        "ASTROKIT_STORE_URL": "file:///srv/store",
        "ASTROKIT_SERVER_ID": "ada-default-1234",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "PYTHONUNBUFFERED": "1",
    }


def test_commands():
    assert cluster_manager_command("/venv/bin/python", "/run/s/spec.json") == [
        "/venv/bin/python",
        "-m",
        "astrokit_spawner.cluster_manager",
        "/run/s/spec.json",
    ]
    singleuser = ["/venv/bin/jupyterhub-singleuser"]
    assert notebook_command(singleuser, ["--debug"], as_root=False) == [*singleuser, "--debug"]
    assert notebook_command(singleuser, [], as_root=True) == [*singleuser, "--allow-root"]
    assert notebook_command(singleuser, ["--allow-root"], as_root=True) == [
        *singleuser,
        "--allow-root",
    ]


def test_docstring_examples_hold():
    import doctest

    from astrokit_spawner import environment, options, profiles

    for module in (environment, options, profiles):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
