"""URL patterns for rendering CAPEv2's real web templates (ROOT_URLCONF of web_settings.py).

CAPE's own web/web/urls.py cannot be imported on Debian (allauth, captcha, its views' import
chain), but the templates `{% url %}` dozens of its names. So the patterns are read, not
imported: web/web/urls.py and each app's urls.py are parsed with `ast`, and every path() /
re_path() / include() is rebuilt with Django's own functions, the same regexes and names
(and app_name namespaces), around one inert view. Names from apps missing in the tree
(allauth, apiv2) get the few patterns listed in MISSING. Written for malfam's tests.
"""

import ast
import os

from django.http import HttpResponse
from django.urls import include, path, re_path

from web_settings import CAPE_WEB


def inert(request, *args, **kwargs):
    return HttpResponse("")


# Names the templates reverse whose urls.py is not in the CAPE tree: the report page's header
# and admin tab need these. Patterns as allauth / CAPE's apiv2 declare them.
MISSING = [
    re_path(r"^apiv2/$", inert, name="apiv2"),
    path("accounts/login/", inert, name="account_login"),
    path("accounts/logout/", inert, name="account_logout"),
    path("accounts/email/", inert, name="account_email"),
    path("accounts/password/change/", inert, name="account_change_password"),
    path("accounts/password/reset/", inert, name="account_reset_password"),
]

FUNCS = {"path": path, "re_path": re_path}


def _parse(py):
    with open(py) as f:
        return ast.parse(f.read(), py)


def _literal(node):
    return node.value if isinstance(node, ast.Constant) else None


def _patterns(py, aliases=None):
    """(urlpatterns, app_name) of one urls.py, rebuilt around the inert view."""
    tree = _parse(py)
    app_name, out = None, []
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign) or not isinstance(stmt.targets[0], ast.Name):
            continue
        target = stmt.targets[0].id
        if target == "app_name":
            app_name = _literal(stmt.value)
        elif target == "urlpatterns" and isinstance(stmt.value, ast.List):
            for call in stmt.value.elts:
                p = _pattern(call, aliases or {})
                if p is not None:
                    out.append(p)
    return out, app_name


def _pattern(call, aliases):
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id in FUNCS and call.args):
        return None
    func, route = FUNCS[call.func.id], _literal(call.args[0])
    target = call.args[1] if len(call.args) > 1 else None
    name = None
    for kw in call.keywords:
        if kw.arg == "name":
            name = _literal(kw.value)
    if isinstance(target, ast.Call) and getattr(target.func, "id", "") == "include":
        arg = target.args[0]
        module = _literal(arg) if isinstance(arg, ast.Constant) else aliases.get(
            getattr(arg, "id", ""))
        if not module:
            return None
        py = os.path.join(CAPE_WEB, *module.split(".")) + ".py"
        if not os.path.exists(py):          # allauth: not part of CAPE's tree
            return None
        sub, app_name = _patterns(py)
        return func(route, include((sub, app_name) if app_name else sub))
    if isinstance(target, ast.Attribute) and getattr(target.value, "id", "") == "admin":
        return None                         # admin.site.urls: no admin app in the test
    return func(route, inert, name=name)


def _aliases(tree):
    """`from analysis import urls as analysis` -> {"analysis": "analysis.urls"}."""
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module:
            for a in stmt.names:
                out[a.asname or a.name] = "%s.%s" % (stmt.module, a.name)
    return out


def cape_urlpatterns():
    root = os.path.join(CAPE_WEB, "web", "urls.py")
    patterns, _ = _patterns(root, _aliases(_parse(root)))
    return patterns + MISSING


urlpatterns = cape_urlpatterns()
