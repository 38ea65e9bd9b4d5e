// FileStamp: a file's change is seen through its size, its mtime or its inode.
#include "common/file_stamp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace tokenway {
namespace {

class FileStampTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/tokenway-file-stamp-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/config.yaml";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    std::remove((path_ + ".new").c_str());
    ::rmdir(dir_.c_str());
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(FileStampTest, MissingFileHasAnEmptyStamp) {
  FileStamp s = FileStamp::Of(path_);
  EXPECT_FALSE(s.exists);
  EXPECT_EQ(s, FileStamp{});
}

TEST_F(FileStampTest, UnchangedFileKeepsItsStamp) {
  Write(path_, "a: 1\n");
  FileStamp s = FileStamp::Of(path_);
  EXPECT_TRUE(s.exists);
  EXPECT_EQ(s.size, 5);
  EXPECT_NE(s.inode, 0u);
  EXPECT_EQ(FileStamp::Of(path_), s);
}

TEST_F(FileStampTest, RewriteWithAnotherSizeChangesTheStamp) {
  Write(path_, "a: 1\n");
  FileStamp before = FileStamp::Of(path_);
  Write(path_, "a: 12\n");
  EXPECT_NE(FileStamp::Of(path_), before);
}

TEST_F(FileStampTest, SameSizeRewriteIsSeenThroughTheModificationTime) {
  Write(path_, "a: 1\n");
  FileStamp before = FileStamp::Of(path_);
  Write(path_, "a: 2\n");
  // Pin the new mtime one second later: a filesystem's timestamp granularity must not decide.
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {static_cast<time_t>(before.mtime_ns / 1'000'000'000 + 1), 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path_.c_str(), times, 0), 0);
  FileStamp after = FileStamp::Of(path_);
  EXPECT_EQ(after.size, before.size);
  EXPECT_NE(after, before);
}

TEST_F(FileStampTest, ReplacementByRenameIsSeenThroughTheInode) {
  Write(path_, "a: 1\n");
  FileStamp before = FileStamp::Of(path_);
  Write(path_ + ".new", "a: 2\n");
  // Same size and the same mtime as the old file: only the inode differs.
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {static_cast<time_t>(before.mtime_ns / 1'000'000'000),
                               static_cast<long>(before.mtime_ns % 1'000'000'000)}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (path_ + ".new").c_str(), times, 0), 0);
  ASSERT_EQ(std::rename((path_ + ".new").c_str(), path_.c_str()), 0);
  FileStamp after = FileStamp::Of(path_);
  EXPECT_EQ(after.size, before.size);
  EXPECT_EQ(after.mtime_ns, before.mtime_ns);
  EXPECT_NE(after.inode, before.inode);
  EXPECT_NE(after, before);
}

}  // namespace
}  // namespace tokenway
