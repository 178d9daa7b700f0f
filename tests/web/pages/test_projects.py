"""*Projekt*, *Nytt projekt*, the project page and *Ta bort projekt*, through the
portal's forms: what each user sees, what the forms change, and what they refuse."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from balsam.context import AppContext
from balsam.providers.git.base import Author
from tests.fixtures.app import TestUser
from tests.web.pages.browsing import ORIGIN, browser, post
from tests.web.test_pages import assert_only_balsams_scripts


def _project(user: TestUser, name: str, description: str = "") -> dict[str, Any]:
    r = user.client.post(
        "/api/v1/projects", json={"name": name, "description": description, "branchName": "main"}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _exists(user: TestUser, project_id: str) -> bool:
    return user.client.get(f"/api/v1/projects/{project_id}").status_code == 200


# -- Projekt -------------------------------------------------------------------------


def test_the_list_shows_my_projects_as_cards_escaped(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    mine = _project(alice, unique("<b>Mitt</b> "), "<script>alert(1)</script>")
    theirs = _project(bob, unique("Bobs "))
    with browser(app, alice, "sv") as client:
        r = client.get("/projects")
    assert r.status_code == 200, r.text
    assert f'href="/projects/{mine["id"]}"' in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert" not in r.text
    assert theirs["id"] not in r.text and theirs["name"] not in r.text
    # The cog menu: a link to the confirmation page, which the script opens as a dialog.
    assert (f'href="/projects/{mine["id"]}/delete" data-dialog="delete-{mine["id"]}">'
            "Ta bort projekt</a>") in r.text  # fmt: skip
    assert f'<dialog id="delete-{mine["id"]}"' in r.text
    assert 'aria-label="Nytt projekt"' in r.text and ">Projekt</a>" in r.text


def test_the_filter_and_the_pages(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    stem = unique("Sida ")
    made = [_project(alice, f"{stem} {n}") for n in range(26)]
    with browser(app, alice) as client:
        first = client.get("/projects", params={"q": stem})
        second = client.get("/projects", params={"q": stem, "page": 2})
        none = client.get("/projects", params={"q": "no-such-project-anywhere"})
    listed = [set(re.findall(r'href="/projects/([^"/?]+)"', r.text)) for r in (first, second)]
    assert len(listed[0]) == 24 and len(listed[1]) == 2 and not listed[0] & listed[1]
    assert listed[0] | listed[1] == {p["id"] for p in made}
    assert "Page 1 of 2" in first.text and 'rel="next"' in first.text
    assert "No project matches the filter." in none.text


def test_admins_may_list_every_project(
    app: FastAPI, alice: TestUser, admin: TestUser, unique: Callable[[str], str]
) -> None:
    alices = _project(alice, unique("Alices "))
    with browser(app, admin) as client:
        mine = client.get("/projects", params={"q": alices["id"]})
        assert f'href="/projects/{alices["id"]}"' not in mine.text
        everything = client.get("/projects", params={"q": alices["id"], "all": "1"})
    assert f'href="/projects/{alices["id"]}"' in everything.text
    with browser(app, alice) as client:  # ``all`` means nothing to others
        assert "All projects" not in client.get("/projects").text


def test_strangers_go_to_login(app: FastAPI) -> None:
    with browser(app) as client:
        for path in ("/projects", "/new-project", "/projects/anything"):
            r = client.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


# -- Nytt projekt ----------------------------------------------------------------------


def test_a_new_project_from_the_form_shows_its_key_once(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    name = unique("Formulär ")
    with browser(app, alice, "sv") as client:
        form = client.get("/new-project")
        assert form.status_code == 200
        for label in ("Namn", "Beskrivning", "Branchnamn", "Skapa från Mall eller Exempel"):
            assert f">{label}</label>" in form.text
        assert 'name="branchName" required maxlength="100" value="main"' in form.text
        r = post(client, "/new-project", {"name": name, "description": "Om", "branchName": "dev"})
    assert r.status_code == 201, r.text
    project_id = re.search(r'href="/projects/([^"]+)"', r.text.split("<main", 1)[1])
    assert project_id is not None
    secret = re.search(r'<code id="secret-key">([^<]+)</code>', r.text)
    assert secret is not None and "visas bara nu" in r.text
    body = alice.client.get(f"/api/v1/projects/{project_id.group(1)}").json()
    assert body["name"] == name and body["branches"][0]["id"] == "dev"
    assert r.headers["cache-control"] == "no-store"


def test_a_refused_form_names_the_field_and_keeps_what_was_typed(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    taken = _project(alice, unique("Upptaget "))
    with browser(app, alice) as client:
        empty = post(
            client, "/new-project", {"name": " ", "description": "kvar", "branchName": "main"}
        )
        branch = post(client, "/new-project", {"name": unique("Bra "), "branchName": "a..b"})
        twice = post(client, "/new-project", {"name": taken["name"], "branchName": "main"})
        source = post(client, "/new-project", {"name": unique("K "), "branchName": "main",
                                               "source": "no-colon"})  # fmt: skip
    assert (
        empty.status_code == 422
        and 'id="name-error"' in empty.text
        and ">kvar</textarea>" in empty.text
    )
    assert (
        branch.status_code == 422
        and 'id="branch-error"' in branch.text
        and 'value="a..b"' in branch.text
    )
    assert twice.status_code == 409 and 'id="name-error"' in twice.text
    assert source.status_code == 422 and 'id="source-error"' in source.text


def test_a_services_refusal_is_shown_in_the_pages_language(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    """The services' messages are templates the catalogs translate, values filled in."""
    taken = _project(alice, unique("Upptaget "))
    with browser(app, alice, language="sv-SE,sv;q=0.9") as client:
        twice = post(client, "/new-project", {"name": taken["name"], "branchName": "main"})
        nobody = post(client, f"/projects/{taken['id']}/members",
                      {"username": "ingen-sadan-anvandare", "role": "member"})  # fmt: skip
    assert f"Det finns redan ett projekt med namnet &#39;{taken['name']}&#39;." in twice.text
    assert "Det finns ingen aktiv användare &#39;ingen-sadan-anvandare&#39;." in nobody.text
    # Next to the form, with what was typed kept.
    assert 'id="member-error" role="alert">Det finns ingen aktiv' in nobody.text
    assert 'value="ingen-sadan-anvandare" aria-invalid="true"' in nobody.text
    with browser(app, bob, language="sv") as client:  # the error page, too
        assert "Endast för administratörer." in client.get("/admin/users").text
    # The API keeps English.
    api = alice.client.post("/api/v1/projects", json={"name": taken["name"], "branchName": "main"})
    assert api.json()["detail"] == f"A project named '{taken['name']}' already exists."


def test_a_project_starts_from_a_library_example(
    app: FastAPI, alice: TestUser, scb_library: dict[str, Any], unique: Callable[[str], str]
) -> None:
    value = f"{scb_library['id']}:ExampleProjects/Normalproduktion med standardisering"
    with browser(app, alice) as client:
        form = client.get("/new-project", params={"source": value})
        assert f'<option value="{value}" selected>' in form.text
        assert "DataportalXML" in form.text  # the templates too
        r = post(client, "/new-project", {"name": unique("Från exempel "), "branchName": "main",
                                          "source": value})  # fmt: skip
    assert r.status_code == 201, r.text
    project_id = re.search(r'href="/projects/([^"]+)"', r.text.split("<main", 1)[1])
    assert project_id is not None
    files = alice.client.get(f"/api/v1/projects/{project_id.group(1)}/branches/main/files").json()
    assert len(files) > 3


def test_a_form_without_the_token_or_from_elsewhere_changes_nothing(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    name = unique("Förfalskat ")
    with browser(app, alice) as client:
        bare = client.post("/new-project", data={"name": name, "branchName": "main"},
                           headers={"Origin": ORIGIN})  # fmt: skip
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
        assert token is not None
        foreign = client.post(
            "/new-project",
            data={"name": name, "branchName": "main", "csrf": token.group(1)},
            headers={"Origin": "https://evil.example"},
        )
    assert bare.status_code == 403 and foreign.status_code == 403
    listed = alice.client.get("/api/v1/projects", params={"query": name}).json()
    assert name not in str(listed)


# -- the project page ------------------------------------------------------------------


def test_the_readme_is_rendered_inert(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(
        alice, unique("Läsmig "), "[x](javascript:alert(1)) <img src=x onerror=alert(2)>"
    )
    with browser(app, alice, "sv") as client:
        r = client.get(f"/projects/{project['id']}")
    assert r.status_code == 200, r.text
    assert f"<h1>{project['name']}</h1>" in r.text  # the README's heading, rendered
    readme = r.text.split('<article class="rendered">', 1)[1].split("</article>", 1)[0]
    assert "onerror" not in readme and "src=" not in readme and "href" not in readme
    assert_only_balsams_scripts(r.text)
    assert f'/git/{project["id"]}.git"' in r.text  # the clone URL (on the host typed)
    for tab in ("Filer", "Bearbetningsmiljöer", "Medlemmar", "Nycklar"):
        assert f">{tab}</a>" in r.text


def test_the_clone_url_uses_the_name_the_user_typed(
    app: FastAPI, alice: TestUser, settings: Any, unique: Callable[[str], str]
) -> None:
    """Cookies follow the host name: what the page shows keeps the user's."""
    project = _project(alice, unique("Klon "))
    with browser(app, alice) as client:
        for host in ("localhost", "127.0.0.1"):
            page = client.get(f"/projects/{project['id']}", headers={"Host": f"{host}:1"})
            clone = f'value="http://{host}:{settings.port}/git/{project["id"]}.git"'
            assert clone in page.text, host


def test_others_get_nothing_of_the_project(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Hemligt "))
    with browser(app, bob) as client:
        for path in ("", "?tab=members", "?tab=keys", "?tab=files", "?tab=resources",
                     "?tab=data", "?tab=workspaces", "?tab=activity", "/delete",
                     "/branches/main/delete", "/file?branch=main&path=README.md"):  # fmt: skip
            r = client.get(f"/projects/{project['id']}{path}")
            assert r.status_code == 404, (path, r.status_code)
            assert project["name"] not in r.text
        r = post(client, f"/projects/{project['id']}/keys", {"name": "stöld"})
        assert r.status_code == 404
        r = post(client, f"/projects/{project['id']}/delete", {"confirm": project["name"]})
        assert r.status_code == 404
    assert _exists(alice, project["id"])


def test_files_tab_walks_folders(
    app: FastAPI, ctx: AppContext, alice: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Filer "))
    pid = project["id"]
    ctx.providers.git.commit_files(pid, "main", {"src/lib/<b>x.R": b"1\n"}, message="m",
                                   author=Author("alice", "alice@balsam.local"))  # fmt: skip
    with browser(app, alice) as client:
        root = client.get(f"/projects/{pid}", params={"tab": "files"})
        deep = client.get(f"/projects/{pid}", params={"tab": "files", "path": "src/lib"})
        missing = client.get(f"/projects/{pid}", params={"tab": "files", "path": "src/nope"})
        a_file = client.get(f"/projects/{pid}", params={"tab": "files", "path": "README.md"})
        escape = client.get(f"/projects/{pid}", params={"tab": "files", "path": "../x"})
        no_branch = client.get(f"/projects/{pid}", params={"branch": "nope"})
    assert "README.md" in root.text and ".gitignore" in root.text and ">src/</a>" in root.text
    assert "&lt;b&gt;x.R" in deep.text and "README.md" not in deep.text
    assert f'href="/projects/{pid}?branch=main&amp;tab=files&amp;path=src">src</a>' in deep.text
    for refused in (missing, a_file, escape, no_branch):
        assert refused.status_code == 404


def test_branches_are_made_and_deleted_from_the_page(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Brancher "))
    pid = project["id"]
    with browser(app, alice) as client:
        made = post(client, f"/projects/{pid}/branches", {"name": "analys", "from": "main"})
        assert made.status_code == 303 and "branch=analys" in made.headers["location"]
        page = client.get(f"/projects/{pid}", params={"branch": "analys"})
        assert f'href="/projects/{pid}/branches/analys/delete"' in page.text
        assert "/branches/main/delete" not in client.get(f"/projects/{pid}").text
        bad = post(client, f"/projects/{pid}/branches", {"name": "-x", "from": "main"})
        assert bad.status_code == 422 and 'role="alert"' in bad.text
        assert client.get(f"/projects/{pid}/branches/analys/delete").status_code == 200
        gone = post(client, f"/projects/{pid}/branches/analys/delete")
        assert gone.status_code == 303
        default = post(client, f"/projects/{pid}/branches/main/delete")
        assert default.status_code == 409
    branches = alice.client.get(f"/api/v1/projects/{pid}/branches").json()
    assert [b["id"] for b in branches] == ["main"]


def test_owners_manage_members_and_members_only_see_them(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Medlemmar "))
    pid = project["id"]
    with browser(app, alice) as owner:
        added = post(
            owner, f"/projects/{pid}/members", {"username": bob.username, "role": "member"}
        )
        assert added.status_code == 303 and added.headers["location"].endswith("tab=members")
        again = post(
            owner, f"/projects/{pid}/members", {"username": bob.username, "role": "member"}
        )
        assert again.status_code == 409
    with browser(app, bob) as member:
        page = member.get(f"/projects/{pid}", params={"tab": "members"})
        assert page.status_code == 200 and alice.username in page.text
        assert "Add member" not in page.text and "/remove" not in page.text
        refused = post(member, f"/projects/{pid}/members", {"username": "x", "role": "owner"})
        assert refused.status_code == 403
    with browser(app, alice) as owner:
        promoted = post(owner, f"/projects/{pid}/members/{bob.username}/role", {"role": "owner"})
        assert promoted.status_code == 303
        roles = {m["username"]: m["role"] for m in alice.client.get(
            f"/api/v1/projects/{pid}/members").json()["members"]}  # fmt: skip
        assert roles[bob.username] == "owner"
        assert post(owner, f"/projects/{pid}/members/{bob.username}/remove").status_code == 303
        assert post(owner, f"/projects/{pid}/members/{bob.username}/fly").status_code == 404
    assert bob.username not in str(alice.client.get(f"/api/v1/projects/{pid}/members").json())


def test_keys_are_minted_shown_once_and_revoked(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Nycklar "))
    pid = project["id"]
    with browser(app, alice, "sv") as client:
        made = post(client, f"/projects/{pid}/keys", {"name": "laptop"})
        assert made.status_code == 201, made.text
        access = re.search(r'<code id="access-key">([^<]+)</code>', made.text)
        secret = re.search(r'<code id="secret-key">([^<]+)</code>', made.text)
        assert access and secret
        listed = client.get(f"/projects/{pid}", params={"tab": "keys"})
        assert access.group(1) in listed.text and secret.group(1) not in listed.text
        revoked = post(client, f"/projects/{pid}/keys/{access.group(1)}/revoke")
        assert revoked.status_code == 303
    keys = alice.client.get(f"/api/v1/projects/{pid}/credentials").json()["credentials"]
    assert access.group(1) not in {k["accessKey"] for k in keys}


# -- Ta bort projekt -------------------------------------------------------------------


def test_delete_asks_for_the_name_and_deletes_only_when_it_matches(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Borttag "))
    pid = project["id"]
    alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    with browser(app, bob) as member:  # a member, not an owner
        assert member.get(f"/projects/{pid}/delete").status_code == 403
        assert (
            post(member, f"/projects/{pid}/delete", {"confirm": project["name"]}).status_code == 403
        )
    with browser(app, alice, "sv") as client:
        page = client.get(f"/projects/{pid}/delete")
        assert page.status_code == 200 and "raderas" in page.text and "OBS!" in page.text
        assert f'data-confirm="{project["name"]}"' in page.text
        wrong = post(client, f"/projects/{pid}/delete", {"confirm": "fel namn"})
        assert wrong.status_code == 422 and _exists(alice, pid)
        done = post(client, f"/projects/{pid}/delete", {"confirm": project["name"]})
        assert done.status_code == 303 and done.headers["location"] == "/projects?deleted=1"
        said = client.get(done.headers["location"])
        assert "Projektet har tagits bort" in said.text and project["name"] not in said.text
    assert not _exists(alice, pid)


def test_aktivitet_shows_each_step_to_owners_only(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Aktivitet "))
    pid = project["id"]
    with browser(app, alice, "sv") as owner:
        post(owner, f"/projects/{pid}/members", {"username": bob.username, "role": "member"})
        made = post(owner, f"/projects/{pid}/keys", {"name": "spårad"})
        access = re.search(r'<code id="access-key">([^<]+)</code>', made.text)
        assert access is not None
        post(owner, f"/projects/{pid}/keys/{access.group(1)}/revoke")
        page = owner.get(f"/projects/{pid}", params={"tab": "activity"})
    assert page.status_code == 200 and ">Aktivitet</a>" in page.text
    # Each step in words (the record's name kept as the cell's title).
    for action, words in (("project.create", "Projekt skapat"), ("member.add", "Medlem tillagd"),
                          ("credential.create", "S3-nyckel skapad"),
                          ("credential.revoke", "S3-nyckel återkallad")):  # fmt: skip
        assert f'<td title="{action}">{words}</td>' in page.text, action
    with browser(app, bob) as member:
        assert ">Activity</a>" not in member.get(f"/projects/{pid}").text
        assert member.get(f"/projects/{pid}", params={"tab": "activity"}).status_code == 403


def test_a_file_is_shown_rendered_highlighted_or_as_a_download(
    app: FastAPI, ctx: AppContext, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    pid = _project(alice, unique("Visa "))["id"]
    files = {"src/run.py": b"print('<hej>')\n", "bild.png": b"\x89PNG\r\n\x1a\nxx",
             "doc.md": b"# Rubrik\n\n<script>alert(1)</script>\n"}  # fmt: skip
    ctx.providers.git.commit_files(pid, "main", files, message="m",
                                   author=Author("alice", "alice@balsam.local"))  # fmt: skip
    url = f"/projects/{pid}/file"
    with browser(app, alice) as client:
        listing = client.get(f"/projects/{pid}", params={"tab": "files", "path": "src"})
        code = client.get(url, params={"branch": "main", "path": "src/run.py"})
        doc = client.get(url, params={"branch": "main", "path": "doc.md"})
        image = client.get(url, params={"branch": "main", "path": "bild.png"})
        download = client.get(url, params={"branch": "main", "path": "doc.md", "download": "1"})
        missing = client.get(url, params={"branch": "main", "path": "../etc/passwd"})
    assert f'href="/projects/{pid}/file?branch=main&amp;path=src%2Frun.py"' in listing.text
    assert 'class="highlight"' in code.text and "&lt;hej&gt;" in code.text
    assert "<h1>Rubrik</h1>" in doc.text and "<script>alert" not in doc.text
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.content == files["doc.md"]
    assert missing.status_code == 404
    with browser(app, bob) as other:
        assert other.get(url, params={"branch": "main", "path": "doc.md"}).status_code == 404


def test_the_data_tab_says_where_the_data_is(
    app: FastAPI, alice: TestUser, unique: Callable[[str], str]
) -> None:
    project = _project(alice, unique("Data "))
    with browser(app, alice) as client:
        page = client.get(f"/projects/{project['id']}", params={"tab": "data"})
    assert page.status_code == 200
    assert f"<code>{project['bucket']}</code>" in page.text and "<code>main/</code>" in page.text
    assert 'id="s3-endpoint"' in page.text


def test_resurser_lists_and_adds_library_resources(
    app: FastAPI, alice: TestUser, scb_library: dict[str, Any], unique: Callable[[str], str]
) -> None:
    pid = _project(alice, unique("Resurser "))["id"]
    tab = f"/projects/{pid}"
    with browser(app, alice, "sv") as client:
        empty = client.get(tab, params={"tab": "resources", "rq": "python"})
        assert "Lägg till resurs" in empty.text and "Analys - Python" in empty.text
        assert "Analys - R<" not in empty.text  # the filter
        form = re.search(r'<input type="hidden" name="resource" value="([^"]+)">', empty.text)
        assert form is not None
        added = post(client, f"/library/{scb_library['id']}/copy", {
            "target": f"{pid}/main", "resource": form.group(1),
            "next": f"/projects/{pid}?branch=main&tab=resources"})  # fmt: skip
        assert added.status_code == 303 and added.headers["location"].endswith("tab=resources")
        listed = client.get(tab, params={"tab": "resources"})
    assert ">Analys - Python/</a>" in listed.text


def test_a_large_file_is_never_read_whole_and_downloads_streamed(
    app: FastAPI,
    ctx: AppContext,
    alice: TestUser,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid = _project(alice, unique("Stor "))["id"]
    big = b"x" * (ctx.settings.library_render_max_bytes + 1)
    ctx.providers.git.commit_files(pid, "main", {"stor.csv": big}, message="m",
                                   author=Author("alice", "alice@balsam.local"))  # fmt: skip

    def whole(*args: Any) -> bytes:
        raise AssertionError("read whole into memory")

    monkeypatch.setattr(ctx.providers.git, "read_file", whole)
    url = f"/projects/{pid}/file"
    with browser(app, alice) as client:
        page = client.get(url, params={"branch": "main", "path": "stor.csv"})
        download = client.get(url, params={"branch": "main", "path": "stor.csv", "download": "1"})
    assert page.status_code == 200 and "cannot be shown here" in page.text
    assert download.status_code == 200 and len(download.content) == len(big)
    assert download.headers["content-length"] == str(len(big))


def test_only_owners_see_the_branch_delete_page(
    app: FastAPI, alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    pid = _project(alice, unique("Grenar "))["id"]
    alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "dev"})
    with browser(app, bob) as member:
        assert member.get(f"/projects/{pid}/branches/dev/delete").status_code == 403


def test_a_page_fetched_by_a_script_is_refused(app: FastAPI, alice: TestUser) -> None:
    with browser(app, alice) as client:
        fetched = client.get("/projects", headers={"Sec-Fetch-Mode": "cors"})
        navigated = client.get("/projects", headers={"Sec-Fetch-Mode": "navigate"})
        token = re.search(r'name="csrf" value="([^"]+)"', navigated.text)
        assert token is not None
        script = {"Sec-Fetch-Mode": "same-origin", "Origin": "http://testserver"}
        form = {"csrf": token.group(1), "name": "x", "branchName": "main"}
        posted = client.post("/new-project", headers=script, data=form)
    assert fetched.status_code == 403 and "csrf" not in fetched.text
    assert navigated.status_code == 200
    assert posted.status_code == 403


def test_error_pages_keep_the_menu_of_a_logged_in_user(app: FastAPI, alice: TestUser) -> None:
    with browser(app, alice, "sv") as client:
        missing = client.get("/no-such-page")
        refused = client.get("/admin/users")
    for page, status in ((missing, 404), (refused, 403)):
        assert page.status_code == status
        assert 'aria-label="Huvudmeny"' in page.text and alice.username in page.text


def test_bad_inputs_to_the_pages_answer_4xx_never_500(
    app: FastAPI, alice: TestUser, admin: TestUser, scb_library: dict[str, Any],
    unique: Callable[[str], str],
) -> None:  # fmt: skip
    pid = _project(alice, unique("Trasigt "))["id"]
    long = "x" * 5000
    wanted = {
        "/projects?page=0": 422,
        f"/projects?q={long}": 422,
        f"/projects/{pid}/file?branch=main": 422,
        f"/projects/{pid}/file?branch=main&path={long}": 422,
        f"/projects/{pid}/file?branch=nope&path=README.md": 404,
        f"/projects/{pid}?page=-1": 422,
        f"/projects/{pid}?tab=files&path=%00": 404,
        "/library/no-such-library": 404,
        f"/library/{scb_library['id']}/file/!!not-an-id": 404,
        f"/search?q={long}": 422,
        "/new-project?source=" + long + "x": 422,
    }
    with browser(app, alice) as client:
        got = {path: client.get(path).status_code for path in wanted}
        posted = post(client, f"/projects/{pid}/keys/{long[:300]}/revoke").status_code
    assert got == wanted and posted == 404
    with browser(app, admin) as client:
        assert client.get("/admin/audit?page=0").status_code == 422
        assert client.get("/admin/users?q=" + long).status_code == 422
