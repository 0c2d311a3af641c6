// muse: the command line front end. It only parses, calls libmuse and prints.

#include "cli.h"
#include "commands.h"

#include <cstdio>
#include <cstring>

#ifndef MUSE_VERSION
#    define MUSE_VERSION "0.0.0"
#endif

static const char * k_help =
    "muse " MUSE_VERSION " - a local multimodal assistant engine on llama.cpp\n"
    "\n"
    "usage: muse <command> [options]\n"
    "\n"
    "commands:\n"
    "  ask PROMPT     answer a prompt with a local GGUF model (streams reasoning and answer)\n"
    "  chat           an interactive chat on a stored conversation (muse chat --help)\n"
    "  info MODEL     describe a GGUF model: architecture, size, context, template, reasoning\n"
    "  serve          serve the OpenAI-compatible API and the web chat (muse serve --help)\n"
    "  eval TASKS     score the reasoning modes on questions with known answers (JSON Lines)\n"
    "  users          add, list, remove, export the users of muse serve (muse users --help)\n"
    "\n"
    "  muse <command> --help   options of a command\n"
    "  muse --version          print the version\n"
    "\n"
    "environment:\n"
    "  MUSE_MODEL      model used when --model is not given (a file, tiny or smoke; default tiny)\n"
    "  MUSE_MODELS_DIR where Muse-Tiny (muse-tiny.gguf) is (default: the source tree's models/)\n"
    "  MUSE_CACHE_DIR  where generated models live (default ~/.cache/muse)\n"
    "  MUSE_DATA_DIR   where users, conversations and files are stored (default\n"
    "                  $XDG_DATA_HOME/muse, else ~/.local/share/muse)\n"
    "\n"
    "exit codes:\n"
    "  0 success, 1 generation failed, 2 bad command line or request,\n"
    "  3 model or projector cannot be loaded, 130 interrupted (Ctrl-C)\n";

int main(int argc, char ** argv) {
    if (argc < 2) {
        fputs(k_help, stderr);
        return muse::cli::EXIT_USAGE;
    }
    const char * cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(k_help, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("muse %s\n", MUSE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "ask")) {
        return muse::cli::cmd_ask(argc, argv);
    }
    if (!strcmp(cmd, "chat")) {
        return muse::cli::cmd_chat(argc, argv);
    }
    if (!strcmp(cmd, "info")) {
        return muse::cli::cmd_info(argc, argv);
    }
    if (!strcmp(cmd, "serve")) {
        return muse::cli::cmd_serve(argc, argv);
    }
    if (!strcmp(cmd, "eval")) {
        return muse::cli::cmd_eval(argc, argv);
    }
    if (!strcmp(cmd, "users")) {
        return muse::cli::cmd_users(argc, argv);
    }
    fprintf(stderr, "muse: unknown command '%s' (see muse --help)\n", cmd);
    return muse::cli::EXIT_USAGE;
}
