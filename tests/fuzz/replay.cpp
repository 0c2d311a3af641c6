// Runs a fuzz target over files without libFuzzer: `fuzz-X FILE|DIR ...` feeds each file (a
// directory: each file in it) to LLVMFuzzerTestOneInput once. ctest replays the seed corpora
// and every crash found so far this way in the ordinary build; bench/fuzz builds the same
// targets with clang's libFuzzer to search for new ones.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int main(int argc, char ** argv) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        if (fs::is_directory(argv[i])) {
            for (const auto & e : fs::recursive_directory_iterator(argv[i])) {
                if (e.is_regular_file()) {
                    files.push_back(e.path());
                }
            }
        } else {
            files.emplace_back(argv[i]);
        }
    }
    if (files.empty()) {
        fprintf(stderr, "usage: %s FILE|DIR ...  (no input files found)\n", argv[0]);
        return 2;
    }
    for (const auto & f : files) {
        std::ifstream     in(f, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        LLVMFuzzerTestOneInput((const uint8_t *) bytes.data(), bytes.size());
    }
    printf("%zu inputs ran\n", files.size());
    return 0;
}
