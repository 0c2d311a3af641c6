#pragma once

namespace muse::cli {

int cmd_ask(int argc, char ** argv);
int cmd_info(int argc, char ** argv);
int cmd_serve(int argc, char ** argv);
int cmd_eval(int argc, char ** argv);
int cmd_users(int argc, char ** argv);
int cmd_chat(int argc, char ** argv);

}  // namespace muse::cli
