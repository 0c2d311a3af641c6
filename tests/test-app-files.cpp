// app/files.h: what the front ends take in is checked by perception's rules, reached through
// app/ only: an upload's kind and format, its decode budget, and files read into a request.

#include "app/files.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace muse;

namespace {

// A 24-bit BMP of width x height grey pixels; `cut` bytes taken off its end.
std::string bmp_file(uint32_t width, uint32_t height, size_t cut = 0) {
    const uint32_t row  = (width * 3 + 3) / 4 * 4;
    std::string    bmp(54 + (size_t) row * height, '\x80');
    auto put32 = [&](size_t at, uint32_t v) { for (int i = 0; i < 4; ++i) bmp[at + i] = (char) (v >> (8 * i)); };
    std::fill(bmp.begin(), bmp.begin() + 54, '\0');
    bmp[0] = 'B', bmp[1] = 'M';
    put32(2, (uint32_t) bmp.size());
    put32(10, 54);
    put32(14, 40);
    put32(18, width);
    put32(22, height);
    bmp[26] = 1;
    bmp[28] = 24;
    bmp.resize(bmp.size() - cut);
    return bmp;
}

std::string temp_file(const std::string & name, const std::string & data) {
    const std::string path = std::string(::testing::TempDir()) + "muse-app-files-" + name;
    std::ofstream(path, std::ios::binary).write(data.data(), (std::streamsize) data.size());
    return path;
}

}  // namespace

TEST(app_files, an_upload_is_an_image_by_its_bytes_and_a_table_otherwise) {
    checked_file f;
    ASSERT_FALSE(check_upload("photo.csv", bmp_file(4, 3), 64u << 20, f));  // the name does not decide
    EXPECT_EQ(f.kind, "image");
    EXPECT_EQ(f.format, "bmp");

    ASSERT_FALSE(check_upload("sales.tsv", "region\tamount\nnorth\t1\n", 64u << 20, f));
    EXPECT_EQ(f.kind, "table");
    EXPECT_EQ(f.format, "tsv");
}

TEST(app_files, a_broken_upload_is_refused_with_why) {
    checked_file f;
    const error  cut = check_upload("shot.bmp", bmp_file(40, 40, 100), 64u << 20, f);
    ASSERT_TRUE(cut);
    EXPECT_EQ(f.kind, "image");
    EXPECT_FALSE(cut.message.empty());

    const error table = check_upload("data.json", "{\"unclosed\": [1, 2", 64u << 20, f);
    ASSERT_TRUE(table);
    EXPECT_EQ(f.kind, "table");
}

TEST(app_files, an_image_must_decode_within_the_budget) {
    // 600 x 600 RGB is 1.08 MB decoded: within the default budget, over 1 MiB.
    const std::string bmp = bmp_file(600, 600);
    checked_file      f;
    EXPECT_FALSE(check_upload("big.bmp", bmp, 64u << 20, f));
    const error e = check_upload("big.bmp", bmp, 1u << 20, f);
    ASSERT_TRUE(e);
    EXPECT_NE(e.message.find("over the 1 MiB"), std::string::npos) << e.message;
}

TEST(app_files, the_image_size_cap_is_perceptions) {
    checked_file f;
    EXPECT_GT(max_image_bytes(), (size_t) 1 << 20);
    // One byte over the cap is refused before anything is decoded.
    const error e = check_upload("huge.bmp", bmp_file(1, 1) + std::string(max_image_bytes(), '\0'), 64u << 20, f);
    ASSERT_TRUE(e);
    EXPECT_NE(e.message.find(std::to_string(max_image_bytes())), std::string::npos) << e.message;
}

TEST(app_files, files_are_read_into_the_request_before_it_runs) {
    ask_input in;
    EXPECT_FALSE(in.read);
    ASSERT_FALSE(add_table_file(in, temp_file("sales.csv", "region,amount\nnorth,1\nsouth,2\n")));
    ASSERT_FALSE(add_image_file(in, temp_file("shot.bmp", bmp_file(8, 8))));
    EXPECT_TRUE(in.read);

    const std::string missing = std::string(::testing::TempDir()) + "muse-app-files-missing.png";
    const error       e       = add_image_file(in, missing);
    ASSERT_TRUE(e);
    EXPECT_NE(e.message.find("missing.png"), std::string::npos) << e.message;
    EXPECT_NE(e.code, ERROR_INTERNAL);
    const error t = add_table_file(in, temp_file("broken.json", "[{\"a\": 1}, {\"a\":"));
    EXPECT_TRUE(t);
}
