"""Desk accounts and canned replies from the command line: `python -m bot.desk.admin`.

    create-user USERNAME --role agent|manager|admin --name 显示名 [--max-open N] [--password-env VAR]
    set-password USERNAME [--password-env VAR]
    disable USERNAME
    grant-pii USERNAME      # may see customers' personal data unmasked (complaint log, exports)
    revoke-pii USERNAME
    list
    canned-add CODE TITLE BODY
    canned-list

Passwords come from an environment variable (scripts) or are typed at a
terminal; never from the command line, where other users could read them in
the process list.
"""
from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Optional

from crm_adapter import CRM
from crm_adapter.errors import CRMError, InvalidInput

ADMIN_PASSWORD_FILE = "desk-admin-password"


class Refused(Exception):
    """A clean refusal: printed without a traceback, exit status 2."""


def _password(env_var: Optional[str]) -> str:
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise Refused(f"环境变量 {env_var} 未设置或为空。")
        return value
    if not sys.stdin.isatty():
        raise Refused("标准输入不是终端，无法输入密码：请用 --password-env 变量名 提供密码。")
    first = getpass.getpass("密码：")
    if first != getpass.getpass("再输入一次："):
        raise Refused("两次输入的密码不一致。")
    return first


def ensure_admin(crm: CRM, var_dir: Path) -> Optional[Path]:
    """With no staff account at all, create ``admin`` with a random password.

    The password goes to var/desk-admin-password (mode 600), like var/rasa_token;
    returns that path when it created the account, None otherwise.
    """
    desk = crm.desk
    if desk.list_staff():
        return None
    password = secrets.token_urlsafe(12)
    path = Path(var_dir) / ADMIN_PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    path.chmod(0o600)
    desk.create_staff("admin", "管理员", "admin", password)
    return path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.desk.admin", description="Kefu desk accounts.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-user", help="create a desk account")
    create.add_argument("username")
    create.add_argument("--role", choices=("agent", "manager", "admin"), required=True)
    create.add_argument("--name", required=True, help="显示名 (shown to customers in the greeting)")
    create.add_argument("--max-open", type=int, default=5, help="chats at once (auto-assignment)")
    create.add_argument("--password-env", metavar="VAR", help="read the password from this variable")
    setpw = sub.add_parser("set-password", help="set a new password (signs the user out everywhere)")
    setpw.add_argument("username")
    setpw.add_argument("--password-env", metavar="VAR")
    disable = sub.add_parser("disable", help="disable an account (signs it out)")
    disable.add_argument("username")
    for name, text in (("grant-pii", "allow seeing customers' personal data unmasked"),
                       ("revoke-pii", "withdraw that right")):
        sub.add_parser(name, help=text).add_argument("username")
    sub.add_parser("list", help="list accounts")
    canned_add = sub.add_parser("canned-add", help="add or replace a canned reply")
    canned_add.add_argument("code")
    canned_add.add_argument("title")
    canned_add.add_argument("body")
    sub.add_parser("canned-list", help="list canned replies")
    args = parser.parse_args(argv)

    crm = CRM.from_env()
    desk = crm.desk
    try:
        if args.command == "create-user":
            view = desk.create_staff(args.username, args.name, args.role, _password(args.password_env),
                                     max_open=args.max_open)
            print(f"已创建 {view.username}（{view.role_label}）")
        elif args.command == "set-password":
            desk.set_password(args.username, _password(args.password_env))
            print(f"已更新 {args.username} 的密码，该账号的登录会话已失效。")
        elif args.command == "disable":
            desk.set_active(args.username, False)
            print(f"已停用 {args.username}")
        elif args.command in ("grant-pii", "revoke-pii"):
            view = desk.set_pii_access(args.username, args.command == "grant-pii")
            print(f"{view.username}：{'可查看' if view.pii_access else '不可查看'}客户个人信息明文")
        elif args.command == "list":
            for s in desk.list_staff():
                pii = "\tpii" if s.pii_access else ""
                print(f"{s.username}\t{s.display_name}\t{s.role}\t{'active' if s.active else 'disabled'}\t"
                      f"{s.status}\tmax_open={s.max_open}{pii}")
        elif args.command == "canned-add":
            saved = desk.save_canned_reply(args.code, args.title, args.body)
            print(f"已保存快捷回复 {saved.code}")
        elif args.command == "canned-list":
            for c in desk.canned_replies():
                print(f"{c.code}\t{c.title}\t{c.body}")
    except (Refused, InvalidInput) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except CRMError as exc:
        print(f"错误：客服数据库不可用（{type(exc).__name__}）", file=sys.stderr)
        return 1
    finally:
        crm.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
