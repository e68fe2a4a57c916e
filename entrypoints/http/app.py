"""make_app(container): what the HTTP server serves - POST /api/v1/messages answered
below Tornado's RequestHandler (fast_send.py says why), every other route by the
Tornado application."""
from __future__ import annotations

import tornado.web

from entrypoints.heartbeat import Heartbeat
from entrypoints.http import api_docs, conversations, groups, messages, static, users
from entrypoints.http.base import NotFoundHandler
from entrypoints.http.client_address import ClientAddresses
from entrypoints.http.fast_send import SendRouter
from entrypoints.logs import log_request
from entrypoints.metrics import Metrics
from entrypoints.socket_writer import SocketWriter
from entrypoints.ws import SocketHandler

ID = r"([^/]+)"


def make_app(container, open_sockets: set, ops_routes: list, metrics: Metrics) -> SendRouter:
    """ops_routes: the operations endpoints served on this port (entrypoints/http/ops.py)."""
    settings = container.settings()
    use = dict  # each handler's initialize() receives exactly what it uses
    api = "/api/v1"
    routes = [
        (api + "/users/register", users.RegisterHandler, use(register=container.register())),
        (api + "/users/login", users.LoginHandler, use(log_in=container.log_in())),
        (api + "/users/logout", users.LogoutHandler, use(log_out=container.log_out())),
        (api + "/users/logout-all", users.LogoutAllHandler, use(log_out=container.log_out())),
        (api + "/users/me", users.MeHandler,
         use(get_user=container.get_user(), user_settings=container.user_settings())),
        (api + "/users/me/settings", users.SettingsHandler, use(user_settings=container.user_settings())),
        (api + "/users", users.FindUserHandler, use(get_user=container.get_user())),
        (api + f"/users/{ID}", users.UserHandler, use(get_user=container.get_user())),
        (api + f"/users/{ID}/presence", users.PresenceHandler, use(get_presence=container.get_presence())),
        (api + "/messages", messages.MessagesHandler,
         use(pull=container.pull())),
        (api + f"/messages/{ID}", messages.MessageHandler, use(change_messages=container.change_messages())),
        (api + "/events", messages.EventsHandler, use(pull_events=container.pull_events())),
        (api + "/groups", groups.GroupsHandler, use(groups=container.manage_groups())),
        (api + f"/groups/{ID}", groups.GroupHandler, use(groups=container.manage_groups())),
        (api + f"/groups/{ID}/members", groups.GroupMembersHandler, use(groups=container.manage_groups())),
        (api + f"/groups/{ID}/members/{ID}", groups.GroupMemberHandler, use(groups=container.manage_groups())),
        (api + f"/groups/{ID}/invitations", groups.GroupInvitationsHandler, use(groups=container.manage_groups())),
        (api + f"/groups/{ID}/messages", messages.GroupMessagesHandler,
         use(send_group=container.send_group(), history=container.history())),
        (api + "/conversations", conversations.ConversationsHandler,
         use(list_conversations=container.list_conversations())),
        (api + f"/conversations/{ID}/read", conversations.PrivateReadHandler, use(mark_read=container.mark_read())),
        (api + f"/groups/{ID}/read", conversations.GroupReadHandler, use(mark_read=container.mark_read())),
        (api + f"/groups/{ID}/reads", conversations.GroupReadsHandler, use(group_reads=container.group_reads())),
        (api + f"/conversations/{ID}/messages", messages.ConversationHandler, use(history=container.history())),
        (r"/ws", SocketHandler,
         use(gateway=container.gateway(), authenticate=container.authenticate(), admit=container.admit_socket(),
             open_sockets=open_sockets,
             writer=SocketWriter(), heartbeat=Heartbeat(settings.ws_ping_interval, settings.ws_ping_timeout),
             client_frames=container.client_frames(), observers=container.socket_observers())),
        *ops_routes,
        *static.routes(),
        *api_docs.routes(),
    ]
    application = tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        websocket_max_message_size=settings.ws_max_message_size,
        courier_origins=settings.origins,
        courier_authenticate=container.authenticate(),
        courier_ws_write_buffer=settings.ws_write_buffer,
        courier_metrics=metrics,
    )
    return SendRouter(application, container.send_private(), container.authenticate(), metrics, settings.origins,
                      ClientAddresses(settings.trusted_networks))
