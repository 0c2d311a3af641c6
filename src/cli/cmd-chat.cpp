// muse chat: an interactive terminal chat on a stored conversation, like `ollama run`. Line
// editing and history come from Debian's libedit; each turn is asked through the one door
// with the conversation's history and appended to it in the data directory's store, so that
// `muse chat --continue`, the web chat and the Conversations API all see it. With stdin not a
// terminal, each line is one turn (or one command) and only the answers are printed.

#include "answer-view.h"
#include "ask-flags.h"
#include "safety-flags.h"
#include "cli.h"
#include "commands.h"

#include "app/assistant.h"
#include "app/conversation-turn.h"
#include "app/data.h"
#include "app/files.h"
#include "app/result-json.h"
#include "app/runtime.h"
#include "core/utf8.h"

#include <editline/readline.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <clocale>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <thread>
#include <unistd.h>

namespace muse::cli {

namespace {

using ojson = nlohmann::ordered_json;

const char * k_chat_help =
    "usage: muse chat [options]\n"
    "\n"
    "An interactive chat on a stored conversation: each turn is answered with the whole\n"
    "conversation before it, and kept in the data directory (the same store as `muse serve`:\n"
    "the web chat and the Conversations API see the same conversations).\n"
    "\n"
    "  --continue           reopen the last conversation\n"
    "  --conversation ID    open this conversation\n"
    "  --user NAME          whose conversations (default: local, the user of a `muse serve`\n"
    "                       without keys); made on first use\n"
    "  --data-dir DIR       where conversations are kept (default: $MUSE_DATA_DIR, else\n"
    "                       $XDG_DATA_HOME/muse, else ~/.local/share/muse)\n"
    "  --db URL             keep conversations in PostgreSQL instead (the database of several\n"
    "                       `muse serve` nodes): postgres://USER@HOST/DB (default: $MUSE_DB);\n"
    "                       the input history stays in the data directory\n"
    "\n"
    "and the model, mode and sampling options of `muse ask` (muse ask --help): --model, --mode,\n"
    "--max-tokens, --thinking-budget, --agents, --temp, --threads, --ctx, --system, ...\n"
    "\n"
    "In the chat (/help lists them): /new, /list, /open N|ID, /mode NAME, /set NAME VALUE,\n"
    "/image FILE, /data FILE, /export FILE, /bye. Ctrl-C stops an answer and stays in the\n"
    "chat; Ctrl-D leaves. From a pipe, each line is one turn: printf 'hi\\nand then?\\n' | muse chat\n";

const char * k_commands =
    "  /new               start a new conversation\n"
    "  /list              your last 20 conversations, newest first\n"
    "  /open N|ID         open conversation N of /list (or its id)\n"
    "  /mode NAME         instant, thinking, contemplating or auto\n"
    "  /set NAME VALUE    max_tokens, thinking_budget, agents, temperature\n"
    "  /image FILE        attach an image to your next message\n"
    "  /data FILE         attach a table (CSV, TSV, JSON, JSON Lines) to your next message\n"
    "  /export FILE       write this conversation (items, reasoning, traces) as JSON\n"
    "  /help              this list\n"
    "  /bye               leave (or Ctrl-D)\n"
    "Ctrl-C stops an answer; the chat goes on.\n";

// Ctrl-C: while an answer is generated, the relay thread turns it into the turn's cancel (a
// handler may only post a semaphore); at the prompt it wakes the line reader through a pipe and
// readline returns no line (the flag says why); from a pipe it leaves.
std::atomic<bool> g_generating{ false };
std::atomic<bool> g_interactive{ false };
std::atomic<bool> g_at_prompt_int{ false };
sem_t             g_sigint;
int               g_wake[2] = { -1, -1 };  // the self-pipe: the handler writes, chat_getc polls

void on_sigint(int) {
    if (g_generating.load()) {
        sem_post(&g_sigint);
        return;
    }
    if (!g_interactive.load()) std::_Exit(EXIT_CANCELLED);
    g_at_prompt_int.store(true);
    const int saved = errno;
    (void) !write(g_wake[1], "x", 1);
    errno = saved;
}

// libedit's character source: one key from the terminal, a whole UTF-8 sequence decoded to its
// code point (libedit takes the int as a wchar_t), or -1 (no line) when Ctrl-C wakes it. A
// signal cannot be relied on to interrupt libedit's own read(): it retries once, and the signal
// may go to any thread.
int chat_getc(FILE * in) {
    const int     fd = fileno(in);
    unsigned char seq[4];
    int           need = 0, have = 0;
    for (;;) {
        pollfd p[2] = { { fd, POLLIN, 0 }, { g_wake[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (p[1].revents & POLLIN) {
            char drain[16];
            while (read(g_wake[0], drain, sizeof(drain)) > 0) {}
            if (g_at_prompt_int.load()) return -1;
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        unsigned char c = 0;
        const ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1) return -1;
        if (have == 0) {
            if (c < 0x80) return c;
            need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
            if (need == 0) return 0xFFFD;  // a continuation byte alone
            seq[have++] = c;
            continue;
        }
        if ((c & 0xC0) != 0x80) return 0xFFFD;  // a sequence cut short
        seq[have++] = c;
        if (have < need) continue;
        if (need == 2) return (seq[0] & 0x1F) << 6 | (seq[1] & 0x3F);
        if (need == 3) return (seq[0] & 0x0F) << 12 | (seq[1] & 0x3F) << 6 | (seq[2] & 0x3F);
        return (seq[0] & 0x07) << 18 | (seq[1] & 0x3F) << 12 | (seq[2] & 0x3F) << 6 | (seq[3] & 0x3F);
    }
}

std::string local_time(int64_t ms) {
    const time_t t = (time_t) (ms / 1000);
    struct tm    tm;
    localtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
    return buf;
}

std::string trim(std::string s) {
    while (!s.empty() && isspace((unsigned char) s.back())) s.pop_back();
    size_t i = 0;
    while (i < s.size() && isspace((unsigned char) s[i])) i++;
    return s.substr(i);
}

class chat_session {
  public:
    chat_session(store & st, std::string uid, std::string user, ask_flags f, runtime & rt, std::string model_id, bool tty) :
        st(st), uid(std::move(uid)), user(std::move(user)), f(std::move(f)), rt(rt), model_id(std::move(model_id)), tty(tty) {}

    // Opens a conversation of this user; false (with a message) when there is none such.
    bool open(const std::string & id_or_number) {
        std::string id = id_or_number;
        if (!id.empty() && id.find_first_not_of("0123456789") == std::string::npos) {
            const size_t n = strtoul(id.c_str(), nullptr, 10);
            if (n < 1 || n > listed.size()) {
                say("no conversation " + id + " in the last /list" + (listed.empty() ? " (run /list first)" : ""));
                return false;
            }
            id = listed[n - 1];
        }
        conversation_record c;
        if (error e = st.get_conversation(uid, id, c)) {
            say(e.code == ERROR_NOT_FOUND ? "no conversation '" + utf8_head(id, 80) + "' (see /list)" : e.message);
            return false;
        }
        conv  = c.id;
        title = c.title;
        if (tty) {
            say("opened " + (title.empty() ? c.id : "\"" + title + "\"") + " (" + std::to_string(c.items) + " messages)");
            show_last_exchange();
        }
        return true;
    }

    bool continue_last() {
        std::vector<conversation_record> cs;
        if (error e = st.list_conversations(uid, 1, 0, cs)) {
            say(e.message);
            return false;
        }
        if (cs.empty()) {
            if (tty) say("no conversation yet: starting a new one");
            return true;
        }
        return open(cs.front().id);
    }

    // One line typed: a command or a turn. False: leave.
    bool line(const std::string & raw) {
        const std::string text = trim(raw);
        if (text.empty()) return true;
        if (text[0] == '/') return command(text);
        turn(text);
        return true;
    }

  private:
    void say(const std::string & s) const {
        fprintf(stderr, "%s\n", s.c_str());
        fflush(stderr);
    }

    void show_last_exchange() {
        std::vector<item_record> items;
        if (st.list_items(uid, conv, 0, 2, items, true) || items.empty()) return;
        for (auto it = items.rbegin(); it != items.rend(); ++it) {
            printf("%s%s\033[0m %s\n", it->role == "user" ? "\033[1m" : "\033[2m", it->role == "user" ? ">>>" : "...",
                   utf8_head(it->text, 400).c_str());
        }
        fflush(stdout);
    }

    bool command(const std::string & text) {
        const size_t      sp   = text.find(' ');
        const std::string name = text.substr(0, sp);
        const std::string arg  = sp == std::string::npos ? "" : trim(text.substr(sp + 1));
        if (name == "/bye" || name == "/exit" || name == "/quit") return false;
        if (name == "/help" || name == "/?") {
            fputs(k_commands, stderr);
        } else if (name == "/new") {
            conv.clear();
            title.clear();
            pending = ask_input{};
            say("new conversation");
        } else if (name == "/list") {
            list();
        } else if (name == "/open") {
            if (arg.empty()) say("usage: /open N|ID (see /list)");
            else open(arg);
        } else if (name == "/mode") {
            ask_mode m;
            if (!parse_ask_mode(arg, m)) {
                say("usage: /mode " + mode_name_list(all_modes()));
            } else {
                f.opt.mode = m;
                say(std::string("mode: ") + ask_mode_name(m));
            }
        } else if (name == "/set") {
            set(arg);
        } else if (name == "/image" || name == "/data") {
            if (arg.empty()) {
                say("usage: " + name + " FILE");
            } else if (error e = name == "/image" ? add_image_file(pending, arg) : add_table_file(pending, arg)) {
                say(name + ": " + e.message);
            } else {
                say("attached " + arg + " to your next message");
            }
        } else if (name == "/export") {
            export_to(arg);
        } else {
            say("unknown command " + utf8_head(name, 40) + " (/help lists them)");
        }
        return true;
    }

    void set(const std::string & arg) {
        const size_t      sp    = arg.find(' ');
        const std::string key   = arg.substr(0, sp);
        const std::string value = sp == std::string::npos ? "" : trim(arg.substr(sp + 1));
        char *            end   = nullptr;
        errno                   = 0;
        const double v          = strtod(value.c_str(), &end);
        const bool   number     = !value.empty() && end && *end == 0 && errno == 0;
        auto in_range = [&](const limit & l, const char * what) {
            std::string problem = number ? limit_problem(l, v, what) : std::string(what) + " must be a number, got '" + utf8_head(value, 40) + "'";
            if (!problem.empty()) say(problem);
            return problem.empty();
        };
        if (key == "max_tokens") {
            if (in_range(k_limit_max_tokens, "max_tokens")) f.opt.answer_tokens = v < 0 ? (int32_t) k_limit_max_tokens.max : (int32_t) v;
        } else if (key == "thinking_budget") {
            if (in_range(k_limit_thinking_budget, "thinking_budget")) f.opt.budget = (int32_t) v;
        } else if (key == "agents") {
            if (in_range(k_limit_agents, "agents")) f.opt.agents = (int32_t) v;
        } else if (key == "temperature") {
            if (in_range(k_limit_temperature, "temperature")) f.opt.sampling.temperature = (float) v;
        } else {
            say("usage: /set max_tokens|thinking_budget|agents|temperature VALUE");
            return;
        }
        say("set " + key + " " + value);
    }

    void list() {
        std::vector<conversation_record> cs;
        if (error e = st.list_conversations(uid, 20, 0, cs)) return say(e.message);
        listed.clear();
        if (cs.empty()) return say("no conversations yet");
        for (size_t i = 0; i < cs.size(); ++i) {
            listed.push_back(cs[i].id);
            fprintf(stderr, "%s%3zu  %s  %-40s  %lld messages  %s\n", cs[i].id == conv ? "*" : " ", i + 1,
                    local_time(cs[i].updated_at).c_str(), utf8_head(cs[i].title.empty() ? "(untitled)" : cs[i].title, 40).c_str(),
                    (long long) cs[i].items, cs[i].id.c_str());
        }
    }

    void export_to(const std::string & path) {
        if (path.empty()) return say("usage: /export FILE");
        if (conv.empty()) return say("nothing to export yet: this conversation has no messages");
        conversation_record c;
        std::vector<item_record> items;
        if (error e = st.get_conversation(uid, conv, c)) return say(e.message);
        ojson list = ojson::array();
        for (int64_t after = 0;;) {
            items.clear();
            if (error e = st.list_items(uid, conv, after, k_store_max_list, items)) return say(e.message);
            for (const auto & it : items) {
                ojson j = { { "id", it.id }, { "type", it.type }, { "role", it.role }, { "author", it.author }, { "text", it.text },
                            { "created_at", it.created_at } };
                if (!it.reasoning.empty()) j["reasoning"] = it.reasoning;
                if (!it.trace_json.empty()) j["muse"] = ojson::parse(it.trace_json, nullptr, false);
                if (!it.usage_json.empty()) j["usage"] = ojson::parse(it.usage_json, nullptr, false);
                list.push_back(j);
                after = it.seq;
            }
            if ((int32_t) items.size() < k_store_max_list) break;
        }
        const ojson doc = { { "id", c.id }, { "title", c.title }, { "created_at", c.created_at }, { "updated_at", c.updated_at },
                            { "items", list } };
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << doc.dump(2, ' ', false, ojson::error_handler_t::replace) << "\n";
        out.close();
        if (!out) return say("/export: cannot write " + path + ": " + strerror(errno));
        say("wrote " + std::to_string(list.size()) + " messages to " + path);
    }

    void turn(const std::string & text) {
        std::vector<chat_message> history;
        if (!conv.empty()) {
            if (error e = load_history(st, uid, conv, history)) return say("muse chat: " + e.message);
        }
        ask_input in     = std::move(pending);
        pending          = ask_input{};
        in.session.user  = user;
        in.request.opt   = f.opt;
        in.request.messages = history;
        std::vector<chat_message> added;  // what this turn adds to the conversation
        if (history.empty() && !f.system_prompt.empty()) added.push_back({ "system", f.system_prompt });
        added.push_back({ "user", text });
        in.request.messages.insert(in.request.messages.end(), added.begin(), added.end());

        answer_printer print(f, f.opt.mode);
        ask_output     out;
        ask_refusal    why;
        cancel_source  stop;
        {
            std::lock_guard<std::mutex> lk(stop_mu);
            current = &stop;
        }
        g_generating = true;
        const error e = rt.door().ask(std::move(in), [&](int, const ask_event & ev) { print.on(ev); }, stop.get_token(), out, &why);
        g_generating = false;
        {
            std::lock_guard<std::mutex> lk(stop_mu);
            current = nullptr;
        }
        if (e) return say("muse chat: " + e.message);
        const ask_result & r = out.results.front();
        print.finish(r);
        const bool stopped = r.finish == FINISH_CANCELLED || stop.stop_requested();
        if (stopped) say(tty ? "\033[2m(stopped)\033[0m" : "(stopped)");
        if (r.err && !stopped) return say("muse chat: " + r.err.message);
        // The turn is kept, a stopped answer as far as it went: it is what was shown.
        if (conv.empty()) {
            conversation_record c;
            std::string t = utf8_head(text, 80);
            if (error ce = st.create_conversation(uid, t, "{}", c)) return say("muse chat: not saved: " + ce.message);
            conv  = c.id;
            title = t;
        }
        if (error se = store_turn(st, uid, conv, added, r, user, model_id, rt.door().safety())) say("muse chat: not saved: " + se.message);
    }

  public:
    // Attachments read already (the command line's --image and --data): for the next turn.
    void attach(ask_input in) { pending = std::move(in); }

    // The relay's side: Ctrl-C while an answer is generated.
    void interrupt() {
        std::lock_guard<std::mutex> lk(stop_mu);
        if (current) current->request_stop();
    }

  private:
    store &                  st;
    std::string              uid, user;
    ask_flags                f;
    runtime &                rt;
    std::string              model_id;
    bool                     tty;
    std::string              conv, title;
    ask_input                pending;  // attachments for the next turn
    std::vector<std::string> listed;   // the last /list, for /open N
    std::mutex               stop_mu;
    cancel_source *          current = nullptr;
};

std::string history_path(const std::string & data_dir) {
    return data_dir == ":memory:" ? "" : data_dir + "/chat_history";
}

}  // namespace

int cmd_chat(int argc, char ** argv) {
    // Chat's own flags out; the rest are `muse ask`'s.
    std::vector<char *> rest = { argv[0], argv[1] };
    std::string         data_flag, db_flag, user = "local", open_id;
    bool                cont = false;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char * name, std::string & out) {
            if (a == name) {
                if (i + 1 >= argc) return false;
                out = argv[++i];
                return true;
            }
            if (a.rfind(std::string(name) + "=", 0) == 0) {
                out = a.substr(strlen(name) + 1);
                return true;
            }
            return false;
        };
        if (a == "--help" || a == "-h") {
            fputs(k_chat_help, stdout);
            return EXIT_OK;
        }
        if ((a == "--data-dir" || a == "--db" || a == "--user" || a == "--conversation") && i + 1 >= argc) {
            fprintf(stderr, "muse chat: %s needs a value\n", a.c_str());
            return EXIT_USAGE;
        }
        if (value("--data-dir", data_flag) || value("--db", db_flag) || value("--user", user) || value("--conversation", open_id)) {
            continue;
        }
        if (a == "--continue") {
            cont = true;
            continue;
        }
        rest.push_back(argv[i]);
    }
    ask_flags f;
    if (std::string e = parse_ask_flags((int) rest.size(), rest.data(), 2, f, false); !e.empty()) {
        if (size_t at = e.find("muse ask --help"); at != std::string::npos) e.replace(at, 15, "muse chat --help");
        fprintf(stderr, "muse chat: %s\n", e.c_str());
        return EXIT_USAGE;
    }
    if (!f.prompt.empty()) {
        fprintf(stderr, "muse chat: takes no PROMPT: type it at the prompt, pipe it in, or use muse ask \"...\"\n");
        return EXIT_USAGE;
    }
    if (f.as_json) {
        fprintf(stderr, "muse chat: --json is for muse ask; use /export FILE in the chat\n");
        return EXIT_USAGE;
    }
    if (cont && !open_id.empty()) {
        fprintf(stderr, "muse chat: --continue or --conversation, not both\n");
        return EXIT_USAGE;
    }

    // The store and the user first: a bad data directory fails before the model loads.
    const std::string data_dir = resolve_data_dir(data_flag);
    const std::string db       = resolve_db(db_flag);
    if (std::string bad = check_db(db); !bad.empty()) {
        fprintf(stderr, "muse chat: %s\n", bad.c_str());
        return EXIT_USAGE;
    }
    std::unique_ptr<store> st;
    if (error e = open_data_store(data_dir, db, st)) {
        fprintf(stderr, "muse chat: %s\n", e.message.c_str());
        return exit_code_for(e.code);
    }
    user_record u;
    error       ue = st->find_user_by_name(user, u);
    if (ue.code == ERROR_NOT_FOUND) ue = st->add_user(user, false, "", u);
    if (ue) {
        fprintf(stderr, "muse chat: --user %s\n", ue.message.c_str());
        return exit_code_for(ue.code);
    }
    ask_input probe;  // attachments named on the command line: read before the model loads, sent with the first message
    for (const auto & file : f.image_files) {
        if (error e = add_image_file(probe, file)) {
            fprintf(stderr, "muse chat: --image %s\n", e.message.c_str());
            return EXIT_USAGE;
        }
    }
    for (const auto & file : f.data_files) {
        if (error e = add_table_file(probe, file)) {
            fprintf(stderr, "muse chat: --data %s\n", e.message.c_str());
            return EXIT_USAGE;
        }
    }

    const bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    set_log_verbosity(f.verbose);
    int              rc = EXIT_OK;
    assistant_params door_params;
    if (std::string e = build_safety(f.safety, door_params.safety); !e.empty()) {
        fprintf(stderr, "muse chat: %s\n", e.c_str());
        return EXIT_USAGE;
    }
    std::unique_ptr<runtime> rt;
    if (!f.backend_urls.empty()) {
        rt = connect_backends("muse chat", f.backend_urls, f.remote, f.model_path, f.mmproj, f.rpc_servers, door_params, rc);
        if (!rt) return rc;
        f.model_path = rt->describe().name;
    } else {
        rt = load_model("muse chat", f.model_path, f.mmproj, f.threads, !tty,
                        "note: using the generated smoke-test model (random weights: its answers are meaningless).\n"
                        "      For real answers: muse chat --model /path/to/model.gguf\n", rc, nullptr, &f.rpc_servers);
        if (!rt) return rc;
        if (error err = rt->start(engine_options_for(f.opt, f.ctx, f.threads, f.draft), door_params)) {
            fprintf(stderr, "muse chat: %s\n", err.message.c_str());
            return exit_code_for(err.code);
        }
    }
    std::string model_id = f.model_path.substr(f.model_path.find_last_of('/') + 1);
    if (model_id.size() > 5 && model_id.compare(model_id.size() - 5, 5, ".gguf") == 0) model_id.resize(model_id.size() - 5);

    chat_session chat(*st, u.id, user, f, *rt, model_id, tty);
    if (cont && !chat.continue_last()) return EXIT_USAGE;
    if (!open_id.empty() && !chat.open(open_id)) return EXIT_USAGE;

    // Ctrl-C from here on: the relay stops the answer being generated.
    sem_init(&g_sigint, 0, 0);
    std::atomic<bool> quit{ false };
    std::thread       relay([&] {
        while (!quit.load()) {
            while (sem_wait(&g_sigint) != 0) {}
            if (!quit.load()) chat.interrupt();
        }
    });
    g_interactive = tty;
    if (pipe(g_wake) != 0 || fcntl(g_wake[0], F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "muse chat: pipe: %s\n", strerror(errno));
        return EXIT_FAILURE_;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sa.sa_flags   = SA_RESTART;  // the pipe, not EINTR, ends a prompt's wait
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);

    // Attachments named on the command line go with the first message.
    chat.attach(std::move(probe));

    if (tty) {
        // Typed text is UTF-8: libedit shows it as such under a UTF-8 character type.
        const char * loc = setlocale(LC_CTYPE, "");
        if (!loc || (!strstr(loc, "UTF-8") && !strstr(loc, "utf8"))) setlocale(LC_CTYPE, "C.UTF-8");
        rl_catch_signals = 0;  // Ctrl-C is ours (on_sigint), not libedit's
        rl_getc_function = chat_getc;
        const std::string hist = history_path(data_dir);
        if (!hist.empty() && !db.empty()) {
            // With --db nothing else made the data directory: the history needs it (private).
            std::error_code ec;
            if (!std::filesystem::exists(data_dir, ec) && std::filesystem::create_directories(data_dir, ec)) {
                std::filesystem::permissions(data_dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
            }
        }
        using_history();
        stifle_history(1000);
        if (!hist.empty()) read_history(hist.c_str());
        fprintf(stderr, "Muse chat on %s. /help for commands, Ctrl-D to leave.\n", rt->describe().description.c_str());
        for (;;) {
            g_at_prompt_int = false;
            char * raw = readline(">>> ");
            if (!raw) {
                if (g_at_prompt_int.load()) {
                    fputs("\n", stdout);  // Ctrl-C at the prompt: a fresh line, the chat goes on
                    continue;
                }
                fputs("\n", stdout);
                break;  // Ctrl-D
            }
            const std::string text = raw;
            free(raw);
            if (!trim(text).empty()) {
                add_history(text.c_str());
                if (!hist.empty()) write_history(hist.c_str());
            }
            if (!chat.line(text)) break;
        }
    } else {
        std::string text;
        while (std::getline(std::cin, text)) {
            if (!chat.line(text)) break;
        }
    }
    quit = true;
    sem_post(&g_sigint);
    relay.join();
    return EXIT_OK;
}

}  // namespace muse::cli
