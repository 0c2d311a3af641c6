#include "engine/text-stream.h"

#include <gtest/gtest.h>

using muse::text_stream;

TEST(text_stream, passes_text_through_without_stops) {
    text_stream ts;
    bool        stopped = false;
    EXPECT_EQ(ts.add("Hello", stopped), "Hello");
    EXPECT_EQ(ts.add(" world", stopped), " world");
    EXPECT_FALSE(stopped);
    EXPECT_EQ(ts.flush(), "");
}

TEST(text_stream, stop_string_across_pieces_is_cut_and_never_shown) {
    text_stream ts;
    ts.set_stops({ "STOP" });
    bool        stopped = false;
    std::string shown;
    shown += ts.add("abc S", stopped);
    EXPECT_FALSE(stopped);
    EXPECT_EQ(shown, "abc ");  // "S" may start the stop string: held back
    shown += ts.add("TO", stopped);
    EXPECT_FALSE(stopped);
    shown += ts.add("P and more", stopped);
    EXPECT_TRUE(stopped);
    EXPECT_EQ(shown, "abc ");
}

TEST(text_stream, held_back_prefix_is_released_when_it_does_not_become_a_stop) {
    text_stream ts;
    ts.set_stops({ "</end>" });
    bool        stopped = false;
    std::string shown   = ts.add("a </e", stopped);
    EXPECT_EQ(shown, "a ");
    shown += ts.add("x", stopped);
    EXPECT_EQ(shown, "a </ex");
    EXPECT_FALSE(stopped);
}

TEST(text_stream, incomplete_utf8_is_held_until_complete) {
    text_stream ts;
    bool        stopped = false;
    const std::string euro = "\xE2\x82\xAC";  // U+20AC in three bytes
    EXPECT_EQ(ts.add("x" + euro.substr(0, 1), stopped), "x");
    EXPECT_EQ(ts.add(euro.substr(1, 1), stopped), "");
    EXPECT_EQ(ts.add(euro.substr(2, 1), stopped), euro);
}

TEST(text_stream, flush_returns_what_was_held_back) {
    text_stream ts;
    ts.set_stops({ "###" });
    bool stopped = false;
    EXPECT_EQ(ts.add("end#", stopped), "end");
    EXPECT_EQ(ts.flush(), "#");
}

TEST(text_stream, byte_tokens_that_never_form_a_character_come_out_as_replacement) {
    // A model's byte-fallback tokens: a 3-byte lead and one continuation, then ASCII. The two
    // bytes are held while they may still complete, then shown as U+FFFD, never raw.
    text_stream ts;
    bool        stopped = false;
    std::string shown   = ts.add("cet\xE1", stopped);
    EXPECT_EQ(shown, "cet");
    shown += ts.add("\xB2", stopped);
    EXPECT_EQ(shown, "cet");
    shown += ts.add("ert", stopped);
    EXPECT_EQ(shown, "cet\xEF\xBF\xBD" "ert");
    shown += ts.add("\xE5\x83", stopped);
    shown += ts.flush();  // generation ended inside a character
    EXPECT_EQ(shown, "cet\xEF\xBF\xBD" "ert\xEF\xBF\xBD");
}
