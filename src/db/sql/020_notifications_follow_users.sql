-- notifications.user_id has no foreign key (a fan-out would check and share-lock the users row of every recipient);
-- this keeps what its ON DELETE CASCADE gave: a deleted user's notifications go with them. Idempotent: applied after
-- every migration run. The service never deletes users (it deactivates them); this covers an operator who does.
CREATE OR REPLACE FUNCTION cdsa_delete_user_notifications() RETURNS trigger AS $$
BEGIN
  DELETE FROM notifications WHERE user_id = OLD.id;
  RETURN OLD;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS users_delete_notifications ON users;
CREATE TRIGGER users_delete_notifications
  AFTER DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION cdsa_delete_user_notifications();
