"""StoreBrowser driven through its controls on a ``file://`` store and the loopback S3 server.

The selection/preview tests (real spectra and cutouts opened from the store) are in
test_browser_selection.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from astrokit_widgets import StoreBrowser

from astrokit import env

N_MANY = 450  # more than two pages of 200


def _populate_local(root: Path, lamost_files) -> None:
    many = root / "shared" / "many"
    many.mkdir(parents=True)
    for i in range(N_MANY):
        (many / f"obj-{i:05d}.txt").write_text(str(i))
    spectra = root / "shared" / "spectra"
    spectra.mkdir(parents=True)
    for path in lamost_files.values():
        shutil.copy(path, spectra / path.name)
    (root / "shared" / "notes.txt").write_text("hello")
    (root / "users" / "alice").mkdir(parents=True)
    (root / "users" / "alice" / "mine.txt").write_text("mine")


@pytest.fixture
def local_store(tmp_path, lamost_files, monkeypatch):
    root = tmp_path / "store"
    _populate_local(root, lamost_files)
    monkeypatch.setenv(env.STORE_URL, f"file://{root}")
    monkeypatch.setenv(env.SHARED_URL, f"file://{root}/shared")
    monkeypatch.setenv(env.USER_URL, f"file://{root}/users/alice")
    return root


@pytest.fixture
def s3_store(make_bucket, s3_store_options, s3_server, lamost_files, monkeypatch, tmp_path):
    import s3fs

    bucket = make_bucket()
    _populate_local(tmp_path / "src", lamost_files)
    fs = s3fs.S3FileSystem(**s3_store_options)
    fs.put(str(tmp_path / "src") + "/", bucket + "/", recursive=True)
    monkeypatch.setenv(env.STORE_URL, bucket)
    monkeypatch.setenv(env.SHARED_URL, f"{bucket}/shared")
    monkeypatch.setenv(env.USER_URL, f"{bucket}/users/alice")
    monkeypatch.setenv(env.S3_ENDPOINT, s3_server)
    return bucket


def _names(browser):
    return [e.name for e in browser.entries]


def _option_values(browser):
    return [value for _, value in browser._listing.options]


# ---------------------------------------------------------------------------- file://
def test_no_arguments_opens_the_configured_store_at_the_shared_area(local_store):
    browser = StoreBrowser()
    assert browser.error == ""
    assert browser.url == f"file://{local_store}/shared"
    assert _names(browser) == ["many", "notes.txt", "spectra"]
    assert [e.kind for e in browser.entries] == ["directory", "file", "directory"]
    labels = dict(browser._roots.options)
    assert labels["my files"] == f"file://{local_store}/users/alice"
    assert labels["store root"] == f"file://{local_store}"
    browser._roots.value = labels["my files"]  # the "go to" shortcut
    assert _names(browser) == ["mine.txt"]


def test_rows_show_size_and_modification_time(local_store):
    browser = StoreBrowser()
    row = dict((v, k) for k, v in browser._listing.options)[
        f"file://{local_store}/shared/notes.txt"
    ]
    text = row.replace("\u00a0", " ")
    assert "notes.txt" in text and "5 B" in text
    entry = next(e for e in browser.entries if e.name == "notes.txt")
    assert f"{entry.modified:%Y-%m-%d %H:%M}" in text


def test_pages_with_load_more_and_loses_nothing(local_store):
    browser = StoreBrowser(page_size=200)
    browser._listing.value = f"file://{local_store}/shared/many"  # click the directory
    assert browser.url.endswith("/shared/many")
    assert len(browser.entries) == 200 and browser.has_more
    assert not browser._more.disabled and "more available" in browser.status
    browser._more.click()
    assert len(browser.entries) == 400 and browser.has_more
    browser._more.click()
    assert len(browser.entries) == N_MANY and not browser.has_more and browser._more.disabled
    assert _names(browser) == [f"obj-{i:05d}.txt" for i in range(N_MANY)]
    assert len(_option_values(browser)) == N_MANY + 1  # plus the ".." row
    browser._more.click()  # nothing more: a no-op
    assert len(browser.entries) == N_MANY


def test_filter_by_glob_and_by_text(local_store):
    browser = StoreBrowser(f"file://{local_store}/shared/many")
    browser._filter.value = "obj-0001?.txt"
    assert _names(browser) == [f"obj-{i:05d}.txt" for i in range(10, 20)]
    assert not browser.has_more
    browser._filter.value = "OBJ-0044"  # plain text: substring, any case
    assert _names(browser) == [f"obj-{i:05d}.txt" for i in range(440, 450)]
    browser._filter.value = ""
    assert len(browser.entries) == 200 and browser.has_more
    browser.pattern = "*.txt"
    browser.up()  # a filter belongs to its directory
    assert browser.pattern == "" and _names(browser) == ["many", "notes.txt", "spectra"]


def test_navigation_up_row_path_box_and_refresh(local_store):
    browser = StoreBrowser()
    browser._listing.value = f"file://{local_store}/shared/spectra"
    assert sorted(_names(browser)) == sorted(
        p.name for p in (local_store / "shared/spectra").iterdir()
    )
    browser._listing.value = "\x00up"  # the ".." row
    assert browser.url == f"file://{local_store}/shared"
    browser._path.value = f"file://{local_store}/users/alice"  # typed URL
    assert _names(browser) == ["mine.txt"]
    (local_store / "users" / "alice" / "new.txt").write_text("new")
    assert _names(browser) == ["mine.txt"]  # listings are not live...
    browser._refresh_button.click()  # ...until refreshed
    assert _names(browser) == ["mine.txt", "new.txt"]
    browser._roots.value = f"file://{local_store}"  # "store root" shortcut
    assert _names(browser) == ["shared", "users"]
    assert "\x00up" not in _option_values(browser)  # the browser stays inside the store
    browser.up()
    assert browser.url == f"file://{local_store}"


def test_any_file_url_works_without_configuration(local_store, monkeypatch):
    for name in (env.STORE_URL, env.SHARED_URL, env.USER_URL):
        monkeypatch.delenv(name)
    browser = StoreBrowser(f"file://{local_store}/shared/spectra")
    assert browser.error == "" and len(browser.entries) == 2


def test_errors_are_sentences_in_the_widget(local_store, monkeypatch):
    browser = StoreBrowser()
    browser._path.value = f"file://{local_store}/no-such-dir"
    assert browser.error.startswith("Not found while listing")
    assert "no-such-dir" in browser._error.value and "Traceback" not in browser._error.value
    assert browser.url == f"file://{local_store}/shared"  # still where it was
    browser.navigate(f"file://{local_store}/shared/notes.txt")
    assert "is a file, not a directory" in browser.error
    browser.refresh()
    assert browser.error == "" and browser._error.value == ""

    monkeypatch.delenv(env.STORE_URL)
    unconfigured = StoreBrowser()
    assert env.STORE_URL in unconfigured.error and unconfigured.store is None
    unconfigured.refresh()  # harmless
    assert unconfigured.entries == []


def test_selection_is_observable(local_store):
    seen, observed = [], []
    browser = StoreBrowser(on_select=seen.append)
    browser.observe(lambda change: observed.append(change["new"]), "selected")
    url = f"file://{local_store}/shared/notes.txt"
    browser._listing.value = url  # click the file
    assert browser.selected == url and seen == [url] and observed == [url]
    assert browser.selected_kind == "file"
    assert "notes.txt: 5 B" in browser._info.value
    browser.on_select(seen.append, remove=True)

    def broken(_url):
        raise RuntimeError("callback failed")

    browser.on_select(broken)
    browser.select(f"file://{local_store}/users/alice/mine.txt")
    assert "callback failed" in browser.error and browser.selected.endswith("mine.txt")
    assert len(seen) == 1


# ---------------------------------------------------------------------------- s3://
@pytest.mark.s3
def test_s3_configured_store_pages_filters_and_hides_secrets(
    s3_store, s3_store_options, widget_state
):
    browser = StoreBrowser(page_size=200)
    assert browser.error == ""
    assert browser.url == f"{s3_store}/shared"
    assert _names(browser) == ["many", "notes.txt", "spectra"]
    browser._listing.value = f"{s3_store}/shared/many"
    assert len(browser.entries) == 200 and browser.has_more
    browser._more.click()
    browser._more.click()
    assert _names(browser) == [f"obj-{i:05d}.txt" for i in range(N_MANY)]
    browser._filter.value = "obj-0001?.txt"
    assert _names(browser) == [f"obj-{i:05d}.txt" for i in range(10, 20)]
    entry = browser.entries[0]
    assert entry.size == 2 and entry.modified is not None
    state = widget_state(browser)
    assert s3_store in state  # the walk did reach the listing
    assert s3_store_options["secret"] not in state
    assert s3_store_options["key"] not in state


@pytest.mark.s3
def test_s3_explicit_url_and_storage_options(s3_store, s3_store_options, monkeypatch):
    from astrokit.store import open_store

    monkeypatch.delenv(env.STORE_URL)
    browser = StoreBrowser(f"{s3_store}/users/alice", storage_options=s3_store_options)
    assert browser.error == "" and _names(browser) == ["mine.txt"]
    assert "\x00up" not in _option_values(browser)  # rooted at the URL: nothing above
    store = open_store(s3_store, storage_options=s3_store_options)
    browser = StoreBrowser(f"{s3_store}/users/alice", store=store)
    browser.up()
    assert browser.url == f"{s3_store}/users"
    browser.up()
    browser.up()  # the store's root is as far up as the browser goes
    assert browser.url == s3_store
    assert "\x00up" not in _option_values(browser)


@pytest.mark.s3
def test_s3_missing_bucket_is_a_message(s3_store_options, monkeypatch):
    monkeypatch.delenv(env.STORE_URL, raising=False)
    browser = StoreBrowser("s3://no-such-bucket-astrokit", storage_options=s3_store_options)
    assert browser.error.startswith("Not found while listing s3://no-such-bucket-astrokit")
    assert browser.entries == []


@pytest.mark.s3
def test_s3_without_credentials_is_a_message(
    s3_store, s3_store_options, monkeypatch, tmp_path, widget_state
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # no shared credentials file, no instance metadata: botocore has nothing to find
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import s3fs

    # fsspec caches filesystems by arguments; the cached one still holds the old credentials.
    s3fs.S3FileSystem.clear_instance_cache()
    browser = StoreBrowser()
    assert browser.error.startswith("No valid credentials"), browser.error
    assert "AWS_ACCESS_KEY_ID" in browser.error  # says what to set
    assert s3_store_options["secret"] not in widget_state(browser)
