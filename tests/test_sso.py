"""Optional single sign-on through OpenID Connect, against a real (small) provider over HTTP: the
code flow signs in the Changeflow user the ID token names; unknown users, forged state and tokens
for another client are refused; without an issuer configured the routes do not exist."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from .oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider


@pytest.fixture
def provider():
    with Provider() as running:
        yield running


@pytest.fixture
def sso_app(api, provider):
    return api.with_settings(oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID,
                             oidc_client_secret=CLIENT_SECRET, oidc_label="Example SSO").app


def sign_in_through(client, next_path="/inbox"):
    start = client.get(f"/login/sso?next={next_path}")
    assert start.status_code == 302
    at_provider = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def test_the_sign_in_page_offers_single_sign_on_and_it_signs_in_the_named_user(sso_app):
    client = sso_app.test_client()
    assert "Sign in with Example SSO" in client.get("/login").get_data(as_text=True)
    answer = sign_in_through(client, "/changes")
    assert answer.status_code == 302 and answer.headers["Location"] == "/changes"
    assert "Morgan" in client.get("/inbox").get_data(as_text=True)


def test_an_identity_without_a_changeflow_account_is_refused(sso_app, provider):
    provider.subject = {"sub": "u-9", "preferred_username": "mallory"}
    client = sso_app.test_client()
    answer = sign_in_through(client)
    assert answer.status_code == 403
    assert "no active Changeflow account for &#39;mallory&#39;" in answer.get_data(as_text=True)
    assert client.get("/inbox").status_code == 302  # still signed out


def test_a_token_issued_for_another_client_is_refused(sso_app, provider):
    provider.audience = "some-other-app"
    client = sso_app.test_client()
    assert sign_in_through(client).status_code == 400
    assert client.get("/inbox").status_code == 302


def test_a_callback_with_a_forged_state_is_refused(sso_app):
    client = sso_app.test_client()
    client.get("/login/sso")
    answer = client.get("/login/sso/callback?code=whatever&state=forged")
    assert answer.status_code == 400 and client.get("/inbox").status_code == 302


def test_without_an_issuer_there_is_no_single_sign_on(app):
    client = app.test_client()
    assert "Sign in with" not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/sso").status_code == 404
    assert client.get("/login/sso/callback?code=x&state=y").status_code == 404
