"""fobsim's driver of django-otp: a Django management command that answers
one JSON request per line on stdin with one JSON line on stdout, calling
django-otp's own API (TOTPDevice, django_otp.match_token,
django_otp.verify_token, devices_for_user, the throttling of
ThrottlingMixin). It judges nothing itself: every verdict is django-otp's.
The clock is the process's (libfaketime, moved by the adapter before each
request).

Requests (`op`): reset, check_token, enable, sign_in, session, deactivate,
list, state. Answers: {"ok": true, ...} or {"ok": false, "reason": ...};
{"error": ...} when the request itself is broken.
"""

import json
import sys
from importlib.metadata import version

import django
import django_otp
from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.db import transaction
from django_otp import devices_for_user, match_token, user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice


def throttle(device):
    """None when the device may verify, else a description of the throttle."""
    allowed, data = device.verify_is_allowed()
    if allowed:
        return None
    data = data or {}
    until = data.get("locked_until")
    return {
        "failures": data.get("failure_count"),
        "until": until.isoformat() if until is not None else None,
    }


def user(name):
    return get_user_model().objects.filter(username=name).first()


def op_reset(req):
    with transaction.atomic():
        TOTPDevice.objects.all().delete()
        get_user_model().objects.all().delete()
        for name, password in req["users"]:
            get_user_model().objects.create_user(username=name, password=password)
    return {"ok": True}


def new_device(req, who=None):
    return TOTPDevice(
        user=who,
        name=req["name"],
        key=req["key"],
        digits=req["digits"],
        step=req["step"],
        confirmed=False,
    )


def op_check_token(req):
    try:
        new_device(req).full_clean(exclude=["user"])
    except ValidationError as e:
        return {"ok": False, "reason": "invalid", "message": "; ".join(e.messages)}
    return {"ok": True}


def op_enable(req):
    who = user(req["user"])
    if who is None:
        return {"ok": False, "reason": "no-user"}
    device = new_device(req, who)
    try:
        device.full_clean()
    except ValidationError as e:
        return {"ok": False, "reason": "invalid", "message": "; ".join(e.messages)}
    device.save()
    ok = device.verify_token(req["code1"]) and device.verify_token(req["code2"])
    if ok:
        device.confirmed = True
        device.save()
        return {"ok": True}
    device.delete()
    return {"ok": False, "reason": "code"}


def op_sign_in(req):
    who = authenticate(username=req["user"], password=req["password"])
    if who is None:
        return {"ok": False, "reason": "password"}
    if not user_has_device(who):
        return {"ok": True}
    devices = list(devices_for_user(who))
    held = [throttle(d) for d in devices]
    if all(h is not None for h in held):
        return {"ok": False, "reason": "throttled", "throttle": held[0]}
    if match_token(who, req.get("code") or "") is not None:
        return {"ok": True}
    return {"ok": False, "reason": "code"}


def op_session(req):
    who = user(req["user"])
    device = None
    if who is not None:
        device = TOTPDevice.objects.filter(
            user=who, name=req["name"], confirmed=True
        ).first()
    if device is None:
        return {"ok": False, "reason": "not-assigned"}
    held = throttle(device)
    if held is not None:
        return {"ok": False, "reason": "throttled", "throttle": held}
    if django_otp.verify_token(who, device.persistent_id, req["code"]) is not None:
        return {"ok": True}
    return {"ok": False, "reason": "code"}


def op_deactivate(req):
    who = user(req["user"])
    if who is None:
        return {"ok": False, "reason": "not-assigned"}
    n, _ = TOTPDevice.objects.filter(user=who, name=req["name"]).delete()
    return {"ok": True} if n else {"ok": False, "reason": "not-assigned"}


def op_list(req):
    who = user(req["user"])
    names = [d.name for d in devices_for_user(who)] if who is not None else []
    return {"ok": True, "devices": names}


def op_state(req):
    device = TOTPDevice.objects.filter(name=req["name"]).first()
    if device is None:
        return {"ok": False, "reason": "no-device"}
    return {
        "ok": True,
        "locked": throttle(device) is not None,
        "user": device.user.username,
        "drift": device.drift,
        "last_t": device.last_t,
    }


OPS = {
    "reset": op_reset,
    "check_token": op_check_token,
    "enable": op_enable,
    "sign_in": op_sign_in,
    "session": op_session,
    "deactivate": op_deactivate,
    "list": op_list,
    "state": op_state,
}


class Command(BaseCommand):
    help = "Answer fobsim's JSON-line requests with django-otp's API."

    def handle(self, *args, **options):
        out = sys.stdout
        out.write(
            json.dumps(
                {
                    "ready": True,
                    "django": django.get_version(),
                    "django_otp": version("django-otp"),
                }
            )
            + "\n"
        )
        out.flush()
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
                fn = OPS.get(req.get("op"))
                answer = fn(req) if fn else {"error": "unknown op %r" % req.get("op")}
            except OverflowError as e:
                # Python's clock ends in 2262: django-otp cannot judge later.
                answer = {"ok": False, "reason": "overflow", "message": "OverflowError: %s" % e}
            except Exception as e:  # report, keep serving
                answer = {"error": "%s: %s" % (type(e).__name__, e)}
            out.write(json.dumps(answer) + "\n")
            out.flush()
